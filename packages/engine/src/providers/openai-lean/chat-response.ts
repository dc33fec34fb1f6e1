import type { ToolCall } from "@cascade/shared";
import { errorFinish, rawNamesNoFinish } from "../ai-sdk/from-result.js";
import { unfinishedAnswerError } from "../provider-error.js";
import type { Completion, FinishReason } from "../types.js";
import {
  arrayOf,
  isAnnotation,
  isLogprobs,
  isNullish,
  isNumber,
  isObject,
  isUsage,
  type Json,
  nullishArrayOf,
  nullishNumber,
  nullishString,
} from "./schema-checks.js";

/**
 * A `chat.completion` body checked by hand against exactly what @ai-sdk/openai 3.0.141's
 * `openaiChatResponseSchema` (zod) accepts, and turned into a Completion exactly as its
 * `doGenerate` followed by `fromGenerateResult` would. The parity tests
 * (openai-lean.test.ts) hold the two paths to the same answers.
 * https://platform.openai.com/docs/api-reference/chat/object
 */

const isToolCall = (value: unknown) =>
  isObject(value) &&
  nullishString(value.id) &&
  value.type === "function" &&
  isObject(value.function) &&
  typeof value.function.name === "string" &&
  typeof value.function.arguments === "string";

function isMessage(value: unknown): boolean {
  if (!isObject(value)) return false;
  return (
    (isNullish(value.role) || value.role === "assistant") &&
    nullishString(value.content) &&
    nullishString(value.refusal) &&
    (isNullish(value.audio) || (isObject(value.audio) && nullishString(value.audio.transcript))) &&
    nullishArrayOf(value.tool_calls, isToolCall) &&
    nullishArrayOf(value.annotations, isAnnotation)
  );
}

const isChoice = (value: unknown) =>
  isObject(value) &&
  isMessage(value.message) &&
  isNumber(value.index) &&
  isLogprobs(value.logprobs) &&
  nullishString(value.finish_reason);

/** Whether the SDK's response schema accepts this parsed body. */
export function isChatCompletionBody(value: unknown): value is Json & { choices: Json[] } {
  return (
    isObject(value) &&
    nullishString(value.id) &&
    nullishNumber(value.created) &&
    nullishString(value.model) &&
    arrayOf(value.choices, isChoice) &&
    isUsage(value.usage)
  );
}

const ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A tool call id for a call the server sent without one (the SDK's `generateId`: 16 of 62 chars). */
function generatedId(): string {
  let id = "";
  for (let index = 0; index < 16; index += 1) id += ID_ALPHABET[(Math.random() * 62) | 0];
  return id;
}

/** The SDK's mapOpenAIFinishReason, then Cascade's own mapping (ai-sdk/from-result.ts). */
function finishReason(raw: unknown, hasToolCalls: boolean): FinishReason {
  switch (raw) {
    case "stop":
      // The SDK calls a refusal content_filter; Cascade passes it on as OpenAI answered it.
      return hasToolCalls ? "tool_calls" : "stop";
    case "length":
    // Mistral's: the model's context window ended the answer.
    case "model_length":
      return "length";
    case "content_filter":
      return "content_filter";
    case "function_call":
    case "tool_calls":
      return "tool_calls";
    default:
      return hasToolCalls ? "tool_calls" : "stop";
  }
}

const nonEmpty = (value: unknown): value is string => typeof value === "string" && value.length > 0;

/** A body that passed isChatCompletionBody, with at least one choice, as a Completion. */
export function completionFromBody(body: Json & { choices: Json[] }): Completion {
  const choice = body.choices[0] as Json;
  const message = choice.message as Json;
  if (choice.finish_reason === "error") {
    const usage = body.usage as Json | null | undefined;
    throw errorFinish(
      isNullish(usage) ? undefined : (((usage as Json).prompt_tokens as number | null | undefined) ?? 0),
      isNullish(usage) ? undefined : (((usage as Json).completion_tokens as number | null | undefined) ?? 0),
    );
  }
  // As doGenerate: the content (else an audio transcript); a refusal is kept apart (the SDK
  // would append it to the text), as OpenAI's message carries it.
  let text = "";
  let sawText = false;
  const content = nonEmpty(message.content) ? message.content : (message.audio as Json | null)?.transcript;
  if (nonEmpty(content)) {
    text += content;
    sawText = true;
  }
  const refusal = nonEmpty(message.refusal) ? message.refusal : undefined;
  const toolCalls: ToolCall[] = [];
  for (const call of (message.tool_calls as Json[] | null | undefined) ?? []) {
    const fn = call.function as { name: string; arguments: string };
    toolCalls.push({
      id: (call.id as string | null | undefined) ?? generatedId(),
      type: "function",
      function: { name: fn.name, arguments: fn.arguments },
    });
  }
  // convertOpenAIChatUsage: no usage object leaves every count undefined; a usage object
  // counts missing numbers as 0 (cached and reasoning tokens included).
  const usage = body.usage as Json | null | undefined;
  let completionUsage: Completion["usage"];
  if (isNullish(usage)) {
    completionUsage = { promptTokens: 0, completionTokens: 0 };
  } else {
    const prompt = (usage as Json).prompt_tokens_details as Json | null | undefined;
    const completion = (usage as Json).completion_tokens_details as Json | null | undefined;
    completionUsage = {
      promptTokens: ((usage as Json).prompt_tokens as number | null | undefined) ?? 0,
      completionTokens: ((usage as Json).completion_tokens as number | null | undefined) ?? 0,
      cachedTokens: (prompt?.cached_tokens as number | null | undefined) ?? 0,
      reasoningTokens: (completion?.reasoning_tokens as number | null | undefined) ?? 0,
    };
    // OpenRouter reports the tokens a prompt wrote to its provider's cache.
    const written = prompt?.cache_write_tokens as number | null | undefined;
    if (written) completionUsage.cacheWriteTokens = written;
  }
  const id = body.id as string | null | undefined;
  const completion: Completion = {
    content: sawText || (toolCalls.length === 0 && refusal === undefined) ? text : null,
    toolCalls,
    finishReason: finishReason(choice.finish_reason, toolCalls.length > 0),
    usage: completionUsage,
    upstreamId: id ?? undefined,
    ...(refusal === undefined ? {} : { refusal }),
  };
  // The provider's own object, unchanged (asked for: OpenAI sends `null` otherwise).
  if (!isNullish(choice.logprobs)) completion.logprobs = choice.logprobs as Json;
  // No reason, or a protobuf enum's unset one (FINISH_REASON_UNSPECIFIED, from servers that proxy
  // Gemini): nothing says the answer ended, as on the SDK path.
  if (rawNamesNoFinish(choice.finish_reason)) throw unfinishedAnswerError(completion);
  return completion;
}
