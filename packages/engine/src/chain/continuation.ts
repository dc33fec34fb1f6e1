import type { ChatRequest, JobError, ModelConfig } from "@cascade/shared";
import type { ProviderError } from "../providers/provider-error.js";

/**
 * A streaming caller that has already been shown part of an answer (the gateway's SSE client):
 * when the stream fails after that, the chain cannot restart unseen. The route's
 * `on_stream_failure` decides: `continue` asks the next hop whose model has the `prefill`
 * capability to go on from what was shown (an assistant prefill) and streams only its
 * continuation; `error` ends the answer with the failure.
 */
export interface StreamContinuation {
  policy: "continue" | "error";
  /**
   * What the caller has been sent of the answer so far, read after the sink's `restart` dropped
   * what it was still holding back (`stream_hold_ms`).
   */
  shown(): { content: string; toolCalls: boolean };
}

/** A chain continuing a partial answer: what was shown, and the failure that broke it off first. */
export interface ContinuedAnswer {
  partial: string;
  /** What the caller is told if no hop can continue: the original failure, never a prefill's rejection. */
  error: JobError;
  /**
   * Tokens charged for the calls since the answer broke (the broken one first): the continued
   * answer's usage adds them to the continuing call's, so its usage counts every call it took.
   */
  charged: { promptTokens: number; completionTokens: number };
}

/** The first failure that broke a shown stream, as the error the caller sees. */
export function brokenStreamError(modelId: string, failure: ProviderError): JobError {
  return {
    type: failure.reason,
    message: `${modelId}: the stream failed after part of the answer was sent (${failure.message})`.slice(
      0,
      500,
    ),
  };
}

export function canContinue(model: ModelConfig): boolean {
  return (model.capabilities ?? []).includes("prefill");
}

/**
 * The request with the partial answer as a last assistant message, for the model to continue.
 * The output budget shrinks by what was already shown (estimated at 4 characters a token, as
 * everywhere), so the whole answer keeps to the caller's `max_tokens`. A partial of whitespace
 * only is no prefill: the model answers afresh (its leading whitespace dropped, as after any
 * prefill ending in whitespace), since Anthropic refuses an empty text block and its SDK trims a
 * prefill's trailing whitespace.
 */
export function withPrefill(request: ChatRequest, partial: string): ChatRequest {
  const messages =
    partial.trim() === ""
      ? request.messages
      : [...request.messages, { role: "assistant" as const, content: partial }];
  const shownTokens = Math.ceil(partial.length / 4);
  const shrink = (limit: number | undefined) =>
    limit === undefined ? undefined : Math.max(1, limit - shownTokens);
  const maxTokens = shrink(request.max_tokens);
  const maxCompletionTokens = shrink(request.max_completion_tokens);
  return {
    ...request,
    messages,
    ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
    ...(maxCompletionTokens !== undefined ? { max_completion_tokens: maxCompletionTokens } : {}),
  };
}

/** Failures of the stream itself, which another model may finish; others (a content filter) end the answer. */
const CONTINUABLE = new Set(["network_error", "timeout", "invalid_response", "server_error", "rate_limited"]);

export function isContinuable(failure: ProviderError): boolean {
  return CONTINUABLE.has(failure.reason);
}
