import type { ChatRequest, HopConfig, ModelConfig } from "@cascade/shared";
import type { ModelTarget } from "../pools/model-targets.js";
import { ProviderError } from "../providers/provider-error.js";
import { unwatchResponse, watchChunks, watchResponse } from "../providers/response-watch.js";
import type { Completion, SentSink, StreamSink } from "../providers/types.js";
import type { ChainContext } from "./chain-context.js";
import { interruptionOf } from "./interruption.js";
import { RunSignal } from "./run-signal.js";

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

/** setTimeout's callback for every clock (its arguments passed through: no closure per call). */
function expireClock(clock: CallClock, which: "whole" | "first"): void {
  clock.expire(which);
}

function checkIdle(clock: CallClock): void {
  clock.checkIdle();
}

/**
 * Times one call against its hop's timeouts and aborts the call with a `timeout`
 * ProviderError when one runs out. The idle clock is one timer re-armed lazily from the time of
 * the last part (not one clearTimeout/setTimeout pair per token).
 */
class CallClock {
  expired: ProviderError | undefined;
  private readonly whole: NodeJS.Timeout;
  private firstToken: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private lastPartAt = 0;
  private started = false;

  /**
   * `abort` is the call's own controller, or the run's shared signal (`signal` being the one the
   * call was made with): a timeout then aborts that signal and the run goes on with a fresh one.
   */
  constructor(
    private readonly abort: AbortController | RunSignal,
    private readonly signal: AbortSignal,
    private readonly timeouts: HopTimeouts,
    private readonly streamed: boolean,
  ) {
    this.whole = setTimeout(expireClock, timeouts.timeoutMs, this, "whole");
    if (timeouts.firstTokenMs !== undefined) {
      this.firstToken = setTimeout(expireClock, timeouts.firstTokenMs, this, "first");
    }
  }

  /** A clock ran out: the call is aborted with a `timeout` naming it (built only then, not per call). */
  expire(which: "whole" | "first" | "idle"): void {
    if (this.expired) return;
    // A run already interrupted keeps its interruption as the reason the call stopped.
    if (this.signal.aborted) return;
    const { timeoutMs, firstTokenMs, idleMs } = this.timeouts;
    const message =
      which === "whole"
        ? `no answer within timeout_ms ${timeoutMs}`
        : which === "first"
          ? `${this.streamed ? "no first token" : "no response"} within first_token_timeout_ms ${firstTokenMs}`
          : `the stream was silent for idle_timeout_ms ${idleMs}`;
    this.expired = new ProviderError("timeout", message, { localTimeout: true });
    if (this.abort instanceof RunSignal) this.abort.abortCall(this.signal, this.expired);
    else this.abort.abort(this.expired);
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
      if (this.timeouts.idleMs !== undefined) this.idle = setTimeout(checkIdle, this.timeouts.idleMs, this);
    }
    this.lastPartAt = performance.now();
  }

  /** The idle timer fired: expire if the stream has been silent long enough, else re-arm for the rest. */
  checkIdle(): void {
    const idleMs = this.timeouts.idleMs ?? 0;
    const silent = performance.now() - this.lastPartAt;
    if (silent >= idleMs - 1) {
      this.expire("idle");
      return;
    }
    this.idle = setTimeout(checkIdle, idleMs - silent, this);
  }

  private clearFirstToken(): void {
    if (this.firstToken) clearTimeout(this.firstToken);
    this.firstToken = undefined;
  }

  stop(): void {
    clearTimeout(this.whole);
    this.clearFirstToken();
    if (this.idle) clearTimeout(this.idle);
  }
}

/**
 * Runs one upstream call of a hop, bounded by its timeouts and the job's signal. With a run signal
 * (`context.runSignal`: a worker's runs and gateway requests) the call is made with it, its timers
 * armed against it (a timeout aborts the call and gives the run a fresh signal); without one (the
 * engine used on its own with a plain AbortSignal, as unit tests do) with a controller per call,
 * following the caller's signal.
 * Timers are cleared when the call ends, however it ends. Throws a ProviderError for every way
 * the call can fail, or the job's JobInterruption when the job's signal stopped it.
 */
export async function callHop(
  context: ChainContext,
  modelId: string,
  model: ModelConfig,
  target: ModelTarget,
  timeouts: HopTimeouts,
  request: ChatRequest,
  sink?: StreamSink,
  /** A call not streamed: told once its request goes out (ProviderCall's sentTo). */
  sentTo?: SentSink,
): Promise<Completion> {
  const runSignal = context.runSignal;
  let signal: AbortSignal;
  let clock: CallClock;
  let onJobAbort: (() => void) | undefined;
  if (runSignal) {
    signal = runSignal.forCall();
    clock = new CallClock(runSignal, signal, timeouts, sink !== undefined);
  } else {
    const controller = new AbortController();
    signal = controller.signal;
    clock = new CallClock(controller, signal, timeouts, sink !== undefined);
    const jobSignal = context.signal;
    onJobAbort = () => controller.abort(jobSignal.reason);
    if (jobSignal.aborted) onJobAbort();
    else jobSignal.addEventListener("abort", onJobAbort, { once: true });
  }
  const watchesFirstByte = sink === undefined && timeouts.firstTokenMs !== undefined;
  if (watchesFirstByte) watchResponse(signal, () => clock.firstByte());
  const dispatchedAt = performance.now();
  let firstDelta = true;
  const timedSink: StreamSink | undefined = sink && {
    delta(part) {
      clock.part(true);
      // Log probabilities alone (handed on once the stream ended) are no token.
      if (firstDelta && (part.content || part.refusal || part.toolCalls?.length)) {
        firstDelta = false;
        context.metrics?.firstToken(target.providerId, modelId, (performance.now() - dispatchedAt) / 1000);
      }
      sink.delta(part);
    },
    heartbeat(output) {
      clock.part(output);
      sink.heartbeat?.(output);
    },
    usage(reported) {
      sink.usage?.(reported);
    },
  };
  // A stream's idle clock counts every chunk the provider sends, tokens or not; and a chunk shows
  // the provider started its answer (which the charge of a call that breaks off needs to know),
  // including chunks the SDK reads before its stream starts.
  const watchesChunks = timedSink !== undefined;
  if (timedSink) watchChunks(signal, () => timedSink.heartbeat?.(false));
  try {
    const provider = context.providers.get(target.providerId, target.deployment?.key);
    const call = {
      request,
      modelId,
      model,
      upstreamName: target.upstreamName,
      signal,
      sentTo,
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
    if (watchesFirstByte || watchesChunks) unwatchResponse(signal);
    if (onJobAbort) context.signal.removeEventListener("abort", onJobAbort);
  }
}
