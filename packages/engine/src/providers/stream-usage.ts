import type { ReportedUsage } from "./types.js";

/**
 * The usage each provider reports inside a stream, read from its raw events as they arrive, so
 * that a stream which fails afterwards (cut before OpenAI's `[DONE]` or Anthropic's message_stop,
 * an idle timeout, a cancel) is charged what the provider said it billed rather than our estimate
 * (ADR 0013, fifth revision). Each reader maps the counts as the SDK's own usage conversion does
 * for a finished answer (from-result.ts), so a call is priced the same whether it finished or not.
 */

type Json = Record<string, unknown>;

/** A count from a provider's usage object: a finite, non-negative number, else undefined. */
function tokenCount(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

const objectOf = (value: unknown): Json | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;

/** Drops the counts that are absent, so a later event's object only carries what was reported. */
function compact(usage: ReportedUsage): ReportedUsage | undefined {
  const kept: ReportedUsage = {};
  for (const key of ["promptTokens", "completionTokens", "cachedTokens", "cacheWriteTokens"] as const)
    if (usage[key] !== undefined) kept[key] = usage[key];
  return Object.keys(kept).length > 0 ? kept : undefined;
}

/**
 * OpenAI's `usage` chunk (`stream_options.include_usage`; other chunks carry `usage: null`): the
 * SDK's `convertOpenAIChatUsage` counts, OpenRouter's `cache_write_tokens` included. It is whole:
 * it replaces anything before it.
 */
export function openAIReportedUsage(
  raw: unknown,
  before: ReportedUsage | undefined,
): ReportedUsage | undefined {
  const usage = objectOf(objectOf(raw)?.usage);
  if (!usage) return undefined;
  const prompt = objectOf(usage.prompt_tokens_details);
  const reported = compact({
    promptTokens: tokenCount(usage.prompt_tokens),
    completionTokens: tokenCount(usage.completion_tokens),
    cachedTokens: tokenCount(prompt?.cached_tokens),
    cacheWriteTokens: tokenCount(prompt?.cache_write_tokens),
  });
  return reported ? { ...before, ...reported } : undefined;
}

/**
 * Anthropic's `message_start` (`message.usage`: the prompt's input, cache read and cache write
 * tokens, and a first output count) and `message_delta` (`usage`: the output tokens so far, and
 * any input counts that changed), merged field by field as the SDK's stream does. The prompt is
 * input + cache reads + cache writes, as the SDK's `convertAnthropicMessagesUsage` counts it.
 */
export function anthropicReportedUsage(
  raw: unknown,
  before: ReportedUsage | undefined,
): ReportedUsage | undefined {
  const event = objectOf(raw);
  const usage =
    event?.type === "message_start"
      ? objectOf(objectOf(event.message)?.usage)
      : event?.type === "message_delta"
        ? objectOf(event.usage)
        : undefined;
  if (!usage) return undefined;
  const cachedBefore = before?.cachedTokens ?? 0;
  const writtenBefore = before?.cacheWriteTokens ?? 0;
  const inputBefore =
    before?.promptTokens === undefined ? undefined : before.promptTokens - cachedBefore - writtenBefore;
  const input = tokenCount(usage.input_tokens) ?? inputBefore;
  const cached = tokenCount(usage.cache_read_input_tokens) ?? before?.cachedTokens;
  const written = tokenCount(usage.cache_creation_input_tokens) ?? before?.cacheWriteTokens;
  const output = tokenCount(usage.output_tokens) ?? before?.completionTokens;
  return compact({
    promptTokens: input === undefined ? undefined : input + (cached ?? 0) + (written ?? 0),
    completionTokens: output,
    cachedTokens: input === undefined ? undefined : cached,
    cacheWriteTokens: input === undefined ? undefined : written,
  });
}

/**
 * Gemini's `usageMetadata`, on every chunk of a stream (the prompt's count on each; the output's
 * once known, cumulative): the SDK's `convertGoogleGenerativeAIUsage` counts, thoughts in the
 * output. A later chunk's counts replace earlier ones.
 */
export function geminiReportedUsage(
  raw: unknown,
  before: ReportedUsage | undefined,
): ReportedUsage | undefined {
  const usage = objectOf(objectOf(raw)?.usageMetadata);
  if (!usage) return undefined;
  const candidates = tokenCount(usage.candidatesTokenCount);
  const thoughts = tokenCount(usage.thoughtsTokenCount);
  const reported = compact({
    promptTokens: tokenCount(usage.promptTokenCount),
    completionTokens:
      candidates === undefined && thoughts === undefined ? undefined : (candidates ?? 0) + (thoughts ?? 0),
    cachedTokens: tokenCount(usage.cachedContentTokenCount),
  });
  return reported ? { ...before, ...reported } : undefined;
}
