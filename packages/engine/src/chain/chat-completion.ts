import type { Completion } from "../providers/types.js";

/**
 * A normalised completion as an OpenAI `chat.completion` object. `model` is the config's model id.
 * `logprobs` (the request asked for them) passes on the provider's, when it gave any; else null.
 */
export function toChatCompletion(
  completion: Completion,
  options: { id: string; modelId: string; created: number; logprobs?: boolean },
) {
  const { usage } = completion;
  return {
    id: options.id,
    object: "chat.completion",
    created: options.created,
    model: options.modelId,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: completion.content,
          refusal: completion.refusal ?? null,
          ...(completion.toolCalls.length ? { tool_calls: completion.toolCalls } : {}),
        },
        logprobs: options.logprobs === true ? (completion.logprobs ?? null) : null,
        finish_reason: completion.finishReason,
      },
    ],
    usage: {
      prompt_tokens: usage.promptTokens,
      completion_tokens: usage.completionTokens,
      total_tokens: usage.promptTokens + usage.completionTokens,
      prompt_tokens_details: { cached_tokens: usage.cachedTokens ?? 0 },
      completion_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
    },
  };
}
