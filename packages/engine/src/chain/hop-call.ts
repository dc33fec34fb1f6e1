import type { ChatRequest, HopConfig, ModelConfig } from "@cascade/shared";
import type { ModelTarget } from "../pools/model-targets.js";
import { ProviderError } from "../providers/provider-error.js";
import { unwatchResponse, watchResponse } from "../providers/response-watch.js";
import type { Completion, StreamSink } from "../providers/types.js";
import type { ChainContext } from "./chain-context.js";
import { interruptionOf } from "./interruption.js";

export const DEFAULT_HOP_TIMEOUT_MS = 60_000;

/** A hop's three clocks (contract, "Config additions"): the whole call, the first token, silence. */
export interface HopTimeouts {
  timeoutMs: number;
  firstTokenMs: number | undefined;
  idleMs: number | undefined;
}

export function hopTimeouts(hop: HopConfig): HopTimeouts {
  return {
    timeoutMs: hop.timeout_ms ?? DEFAULT_HOP_TIMEOUT_MS,
    firstTokenMs: hop.first_token_timeout_ms,
    idleMs: hop.idle_timeout_ms,
  };
}

/**
 * Times one call against its hop's timeouts and aborts `controller` with a `timeout`
 * ProviderError when one runs out. The idle clock is one timer re-armed lazily from the time of
 * the last part (not one clearTimeout/setTimeout pair per token).
 */
class CallClock {
  expired: ProviderError | undefined;
  private readonly timers: Array<NodeJS.Timeout | undefined> = [];
  private firstToken: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private lastPartAt = 0;
  private started = false;

  constructor(
    private readonly controller: AbortController,
    private readonly timeouts: HopTimeouts,
    private readonly streamed: boolean,
  ) {
    this.timers.push(this.arm(timeouts.timeoutMs, `no answer within timeout_ms ${timeouts.timeoutMs}`));
    if (timeouts.firstTokenMs !== undefined) {
      const what = streamed ? "no first token" : "no response";
      this.firstToken = this.arm(
        timeouts.firstTokenMs,
        `${what} within first_token_timeout_ms ${timeouts.firstTokenMs}`,
      );
    }
  }

  private arm(ms: number, message: string): NodeJS.Timeout {
    return setTimeout(() => this.expire(message), ms);
  }

  private expire(message: string): void {
    if (this.expired) return;
    this.expired = new ProviderError("timeout", message);
    this.controller.abort(this.expired);
  }

  /** The first byte of a call that is not streamed arrived. */
  firstByte(): void {
    if (!this.streamed) this.clearFirstToken();
  }

  /** A part of the stream arrived; `output` when it is the model's output (a token). */
  part(output: boolean): void {
    if (output && !this.started) {
      this.started = true;
      this.clearFirstToken();
      if (this.timeouts.idleMs !== undefined) this.idle = setTimeout(this.checkIdle, this.timeouts.idleMs);
    }
    this.lastPartAt = performance.now();
  }

  private readonly checkIdle = (): void => {
    const idleMs = this.timeouts.idleMs ?? 0;
    const silent = performance.now() - this.lastPartAt;
    if (silent >= idleMs - 1) {
      this.expire(`the stream was silent for idle_timeout_ms ${idleMs}`);
      return;
    }
    this.idle = setTimeout(this.checkIdle, idleMs - silent);
  };

  private clearFirstToken(): void {
    if (this.firstToken) clearTimeout(this.firstToken);
    this.firstToken = undefined;
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.clearFirstToken();
    if (this.idle) clearTimeout(this.idle);
  }
}

/**
 * Runs one upstream call of a hop, bounded by its timeouts and the job's signal. One controller
 * per call, released when it ends (AbortSignal.any + AbortSignal.timeout cost ~5 KB and a 60 s
 * timer per hop). Throws a ProviderError for every way the call can fail, or the job's
 * JobInterruption when the job's signal stopped it.
 */
export async function callHop(
  context: ChainContext,
  modelId: string,
  model: ModelConfig,
  target: ModelTarget,
  timeouts: HopTimeouts,
  request: ChatRequest,
  sink?: StreamSink,
): Promise<Completion> {
  const controller = new AbortController();
  const clock = new CallClock(controller, timeouts, sink !== undefined);
  const onJobAbort = () => controller.abort(context.signal.reason);
  if (context.signal.aborted) onJobAbort();
  else context.signal.addEventListener("abort", onJobAbort, { once: true });
  const watchesFirstByte = sink === undefined && timeouts.firstTokenMs !== undefined;
  if (watchesFirstByte) watchResponse(controller.signal, () => clock.firstByte());
  const dispatchedAt = performance.now();
  let firstDelta = true;
  const timedSink: StreamSink | undefined = sink && {
    delta(part) {
      clock.part(true);
      if (firstDelta) {
        firstDelta = false;
        context.metrics?.firstToken(target.providerId, modelId, (performance.now() - dispatchedAt) / 1000);
      }
      sink.delta(part);
    },
    heartbeat(output) {
      clock.part(output);
    },
  };
  try {
    const provider = context.providers.get(target.providerId, target.deployment?.key);
    const call = {
      request,
      modelId,
      model,
      upstreamName: target.upstreamName,
      signal: controller.signal,
    };
    const completion = timedSink ? await provider.stream(call, timedSink) : await provider.generate(call);
    if (completion.finishReason === "content_filter") {
      // The provider bills a filtered completion like any other: keep its usage for the charge.
      throw new ProviderError(
        "content_filter",
        "the provider stopped the completion with finish_reason content_filter",
        { usage: completion.usage },
      );
    }
    return completion;
  } catch (error) {
    const interruption = interruptionOf(context.signal);
    if (interruption) throw interruption;
    if (clock.expired) throw clock.expired;
    if (error instanceof ProviderError) throw error;
    throw new ProviderError(
      "invalid_response",
      `unexpected error: ${(error as Error)?.message ?? String(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    clock.stop();
    if (watchesFirstByte) unwatchResponse(controller.signal);
    context.signal.removeEventListener("abort", onJobAbort);
  }
}
