import type { ChatRequest, ModelConfig } from "@cascade/shared";
import { ProviderError } from "../providers/provider-error.js";
import type { Completion, StreamSink } from "../providers/types.js";
import type { ChainContext } from "./chain-context.js";
import { interruptionOf } from "./interruption.js";

/**
 * Runs one upstream call of a hop, bounded by its timeout and the job's signal. One controller
 * and one timer per call, both released when it ends (AbortSignal.any + AbortSignal.timeout cost
 * ~5 KB and a 60 s timer per hop). Throws a ProviderError for every way the call can fail, or the
 * job's JobInterruption when the job's signal stopped it.
 */
export async function callHop(
  context: ChainContext,
  modelId: string,
  model: ModelConfig,
  timeoutMs: number,
  request: ChatRequest,
  sink?: StreamSink,
): Promise<Completion> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new ProviderError("timeout", `no answer within timeout_ms ${timeoutMs}`));
  }, timeoutMs);
  const onJobAbort = () => controller.abort(context.signal.reason);
  if (context.signal.aborted) onJobAbort();
  else context.signal.addEventListener("abort", onJobAbort, { once: true });
  try {
    const provider = context.providers.get(model.provider);
    const call = {
      request,
      modelId,
      model,
      upstreamName: model.name ?? modelId,
      signal: controller.signal,
    };
    const completion = sink ? await provider.stream(call, sink) : await provider.generate(call);
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
    if (timedOut) throw new ProviderError("timeout", `no answer within timeout_ms ${timeoutMs}`);
    if (error instanceof ProviderError) throw error;
    throw new ProviderError(
      "invalid_response",
      `unexpected error: ${(error as Error)?.message ?? String(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    clearTimeout(timer);
    context.signal.removeEventListener("abort", onJobAbort);
  }
}
