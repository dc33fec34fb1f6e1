import type { LanguageModelV3FinishReason, LanguageModelV3GenerateResult } from "@ai-sdk/provider";
import type { ToolCall } from "@cascade/shared";
import { ProviderError } from "../provider-error.js";
import type { Completion, FinishReason } from "../types.js";

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
  if (result.finishReason.unified === "error") {
    throw new ProviderError(
      "invalid_response",
      `the provider reported finish reason "${result.finishReason.raw}"`,
    );
  }
  const usage = result.usage;
  const promptTokens = usage.inputTokens.total;
  const completionTokens = usage.outputTokens.total;
  return {
    content: sawText || toolCalls.length === 0 ? text : null,
    toolCalls,
    finishReason: toFinishReason(result.finishReason, toolCalls.length > 0),
    usage: {
      promptTokens: promptTokens ?? 0,
      completionTokens: completionTokens ?? 0,
      ...(usage.inputTokens.cacheRead !== undefined ? { cachedTokens: usage.inputTokens.cacheRead } : {}),
      ...(usage.outputTokens.reasoning !== undefined
        ? { reasoningTokens: usage.outputTokens.reasoning }
        : {}),
    },
    upstreamId: result.response?.id,
  };
}
