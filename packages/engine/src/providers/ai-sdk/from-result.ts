import type { LanguageModelV3FinishReason, LanguageModelV3GenerateResult } from "@ai-sdk/provider";
import type { ToolCall } from "@cascade/shared";
import { ProviderError, unfinishedAnswerError } from "../provider-error.js";
import type { ChoiceLogprobs, Completion, FinishReason } from "../types.js";

/**
 * An answer the provider finished with `finish_reason: "error"` (OpenRouter's mid-stream error,
 * also sent by some other OpenAI-compatible servers): what came before it is not a whole answer,
 * whatever the SDK maps the reason to. A server_error; billed as the provider reported, if it did.
 */
export function errorFinish(
  promptTokens: number | undefined,
  completionTokens: number | undefined,
): ProviderError {
  return new ProviderError(
    "server_error",
    'the provider ended its answer with finish_reason "error"',
    promptTokens === undefined && completionTokens === undefined
      ? {}
      : { usage: { promptTokens: promptTokens ?? 0, completionTokens: completionTokens ?? 0 } },
  );
}

/**
 * A finish reason that names none: the SDK's "other" with nothing raw (the provider sent no
 * reason), or with a protobuf enum's default, such as Gemini's `FINISH_REASON_UNSPECIFIED` (the
 * enum's "unused" zero value; Google documents an empty finish reason as "the model has not
 * stopped generating the tokens"). Nothing says such an answer ended rather than was cut short,
 * so it is never passed on as finished.
 * https://ai.google.dev/api/generate-content#FinishReason
 */
export function namesNoFinish(reason: LanguageModelV3FinishReason): boolean {
  return reason.unified === "other" && rawNamesNoFinish(reason.raw);
}

/** The same, for a provider's raw finish reason (clients that read the answer themselves). */
export function rawNamesNoFinish(raw: unknown): boolean {
  return raw == null || (typeof raw === "string" && raw.endsWith("_UNSPECIFIED"));
}

function toFinishReason(reason: LanguageModelV3FinishReason, hasToolCalls: boolean): FinishReason {
  switch (reason.unified) {
    case "length":
      return "length";
    case "content-filter":
      return "content_filter";
    case "tool-calls":
      return "tool_calls";
    default:
      return hasToolCalls ? "tool_calls" : "stop";
  }
}

/**
 * OpenAI's refusal (`message.refusal`), which the SDK appends to the text and reports as a content
 * filter: marked by readStream for a stream, else read from the answer's body.
 */
function refusalOf(result: LanguageModelV3GenerateResult): { refusal: string; inText: boolean } | undefined {
  const marked = (result.providerMetadata?.cascade as { refusal?: unknown } | undefined)?.refusal;
  if (typeof marked === "string") return { refusal: marked, inText: false };
  if (result.finishReason.unified !== "content-filter") return undefined;
  const body = result.response?.body as { choices?: Array<{ message?: { refusal?: unknown } }> } | undefined;
  const refusal = body?.choices?.[0]?.message?.refusal;
  return typeof refusal === "string" && refusal.length > 0 ? { refusal, inText: true } : undefined;
}

/**
 * OpenAI's `choices[0].logprobs` as the provider sent it: gathered by the StreamAssembler for a
 * stream, else read from the answer's raw body (the SDK's own mapping flattens it and its schema
 * drops each entry's `bytes`). Undefined for providers whose answers have no such field.
 */
function logprobsOf(result: LanguageModelV3GenerateResult): ChoiceLogprobs | undefined {
  const gathered = (result.providerMetadata?.cascade as { logprobs?: ChoiceLogprobs } | undefined)?.logprobs;
  if (gathered !== undefined) return gathered;
  const body = result.response?.body as { choices?: Array<{ logprobs?: unknown }> } | undefined;
  const logprobs = Array.isArray(body?.choices) ? body.choices[0]?.logprobs : undefined;
  return typeof logprobs === "object" && logprobs !== null ? (logprobs as ChoiceLogprobs) : undefined;
}

/** An AI SDK generate result as Cascade's normalised completion. */
export function fromGenerateResult(result: LanguageModelV3GenerateResult): Completion {
  let text = "";
  let sawText = false;
  const toolCalls: ToolCall[] = [];
  for (const part of result.content) {
    if (part.type === "text") {
      text += part.text;
      sawText = true;
    } else if (part.type === "tool-call") {
      toolCalls.push({
        id: part.toolCallId,
        type: "function",
        function: {
          name: part.toolName,
          arguments: typeof part.input === "string" ? part.input : JSON.stringify(part.input),
        },
      });
    }
  }
  const usage = result.usage;
  const promptTokens = usage.inputTokens.total;
  const completionTokens = usage.outputTokens.total;
  if (result.finishReason.unified === "error") {
    // An answer that ended in an error (Gemini's MALFORMED_FUNCTION_CALL) was still made: its
    // reported usage is what it is charged.
    const billed = (promptTokens ?? 0) + (completionTokens ?? 0) > 0;
    throw new ProviderError(
      "invalid_response",
      `the provider reported finish reason "${result.finishReason.raw}"`,
      billed ? { usage: { promptTokens: promptTokens ?? 0, completionTokens: completionTokens ?? 0 } } : {},
    );
  }
  if (result.finishReason.raw === "error") throw errorFinish(promptTokens, completionTokens);
  const found = refusalOf(result);
  const refusal = found?.refusal;
  if (found?.inText && text.endsWith(found.refusal)) {
    // doGenerate's text is the content, then the refusal (a stream's text never holds it).
    text = text.slice(0, text.length - found.refusal.length);
    sawText = text.length > 0;
  }
  // The SDK's content-filter for a refusal the provider finished with "stop"; a real filter stays.
  const finishReason =
    refusal !== undefined &&
    result.finishReason.unified === "content-filter" &&
    result.finishReason.raw === "stop"
      ? toFinishReason({ unified: "stop", raw: "stop" }, toolCalls.length > 0)
      : toFinishReason(result.finishReason, toolCalls.length > 0);
  const completion: Completion = {
    ...(refusal === undefined ? {} : { refusal }),
    content: sawText || (toolCalls.length === 0 && refusal === undefined) ? text : null,
    toolCalls,
    finishReason,
    usage: {
      promptTokens: promptTokens ?? 0,
      completionTokens: completionTokens ?? 0,
      ...(usage.inputTokens.cacheRead !== undefined ? { cachedTokens: usage.inputTokens.cacheRead } : {}),
      ...(usage.inputTokens.cacheWrite ? { cacheWriteTokens: usage.inputTokens.cacheWrite } : {}),
      ...(usage.outputTokens.reasoning !== undefined
        ? { reasoningTokens: usage.outputTokens.reasoning }
        : {}),
    },
    upstreamId: result.response?.id,
  };
  const logprobs = logprobsOf(result);
  if (logprobs !== undefined) completion.logprobs = logprobs;
  // No finish reason in the answer, or one that names none: not a finished answer.
  if (namesNoFinish(result.finishReason)) throw unfinishedAnswerError(completion);
  return completion;
}
