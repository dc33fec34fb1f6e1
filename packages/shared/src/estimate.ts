import type { ModelConfig } from "./config/schema.js";
import { type ChatRequest, requestedMaxTokens } from "./schemas/chat-request.js";

/** Output tokens assumed for estimates when the request sets no max_tokens (contract, "Estimates"). */
export const DEFAULT_MAX_TOKENS_ESTIMATE = 1024;
const TOKENS_PER_IMAGE = 85;
const TOKENS_PER_MESSAGE = 10;

function textLength(content: unknown): { characters: number; images: number } {
  if (typeof content === "string") return { characters: content.length, images: 0 };
  let characters = 0;
  let images = 0;
  if (Array.isArray(content)) {
    for (const part of content as Array<{ type: string; text?: string }>) {
      if (part.type === "text") characters += part.text?.length ?? 0;
      else if (part.type === "image_url") images += 1;
    }
  }
  return { characters, images };
}

/**
 * Prompt tokens estimated before a call: ceil(characters of all text / 4) + 85 per image +
 * 10 per message. Tool definitions and tool-call arguments count as text.
 */
export function estimatePromptTokens(request: ChatRequest): number {
  let characters = 0;
  let images = 0;
  for (const message of request.messages) {
    const counted = textLength(message.content);
    characters += counted.characters;
    images += counted.images;
    if (message.role === "assistant") {
      for (const call of message.tool_calls ?? [])
        characters += call.function.name.length + call.function.arguments.length;
    }
  }
  for (const tool of request.tools ?? []) characters += JSON.stringify(tool.function).length;
  if (request.response_format?.type === "json_schema") {
    characters += JSON.stringify(request.response_format.json_schema.schema ?? {}).length;
  }
  return Math.ceil(characters / 4) + TOKENS_PER_IMAGE * images + TOKENS_PER_MESSAGE * request.messages.length;
}

export function estimateMaxTokens(request: ChatRequest): number {
  return requestedMaxTokens(request) ?? DEFAULT_MAX_TOKENS_ESTIMATE;
}

/**
 * USD for a provider's reported usage: prompt tokens read from or written to its cache at the
 * model's cache prices where the config has them (each defaults to the input price), the rest of
 * the prompt at the input price, the completion at the output price. `promptTokens` includes the
 * cached ones, as every provider's usage counts them (OpenAI's `prompt_tokens`, Anthropic's input
 * plus cache reads and writes, Gemini's `promptTokenCount`).
 */
export function usageCostUsd(
  model: Pick<ModelConfig, "price">,
  usage: { promptTokens: number; completionTokens: number; cachedTokens?: number; cacheWriteTokens?: number },
): number {
  const price = model.price;
  if (!price) return 0;
  const read = price.cached_input_per_mtok === undefined ? 0 : Math.max(0, usage.cachedTokens ?? 0);
  const written = price.cache_write_per_mtok === undefined ? 0 : Math.max(0, usage.cacheWriteTokens ?? 0);
  if (read === 0 && written === 0) return costUsd(model, usage.promptTokens, usage.completionTokens);
  const uncached = Math.max(0, usage.promptTokens - read - written);
  const cost =
    (uncached * price.input_per_mtok +
      read * (price.cached_input_per_mtok ?? price.input_per_mtok) +
      written * (price.cache_write_per_mtok ?? price.input_per_mtok) +
      usage.completionTokens * price.output_per_mtok) /
    1_000_000;
  return Math.round(cost * 1e10) / 1e10;
}

/** USD for the given token counts at a model's configured prices (0 when it has none). */
export function costUsd(
  model: Pick<ModelConfig, "price">,
  promptTokens: number,
  completionTokens: number,
): number {
  if (!model.price) return 0;
  const cost =
    (promptTokens * model.price.input_per_mtok + completionTokens * model.price.output_per_mtok) / 1_000_000;
  return Math.round(cost * 1e10) / 1e10;
}
