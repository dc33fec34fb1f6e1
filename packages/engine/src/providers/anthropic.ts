import { createAnthropic } from "@ai-sdk/anthropic";
import type { LanguageModelV3CallOptions, LanguageModelV3Prompt } from "@ai-sdk/provider";
import type { ChatRequest, ProviderConfig } from "@cascade/shared";
import { createAiSdkAdapter } from "./ai-sdk/adapter.js";
import { clientSettings } from "./ai-sdk/client-settings.js";
import { knownEventsOnly } from "./anthropic-events.js";
import { ANTHROPIC_ERRORS, rejectAnthropicRefusal } from "./errors-anthropic.js";
import type { ProviderAdapter, ProviderCall } from "./types.js";

export const ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com/v1";

/**
 * `max_tokens` sent when the request has none (Anthropic requires it; OpenAI does not). Left to
 * itself, @ai-sdk/anthropic sends the model's whole output ceiling (64k–128k for current Claude
 * models, 4096 for names it does not know), which makes a prompt near the context window fail
 * with "input length and `max_tokens` exceed context limit" and reserves that much of the
 * output-tokens-per-minute limit on every call. 4096 is what LiteLLM and the SDK's own fallback use.
 */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/** OpenAI request fields Anthropic can honour through the SDK's provider options. */
function anthropicOptions(request: ChatRequest): Record<string, unknown> | undefined {
  const options: Record<string, unknown> = {};
  if (request.parallel_tool_calls === false) options.disableParallelToolUse = true;
  if (request.user !== undefined) options.metadata = { userId: request.user };
  return Object.keys(options).length ? options : undefined;
}

/** Anthropic takes tool_use ids of these characters only; OpenAI's and other vendors' may hold more. */
const TOOL_ID_REFUSED = /[^a-zA-Z0-9_-]/;
const TOOL_ID_REFUSED_ALL = /[^a-zA-Z0-9_-]/g;

/**
 * What OpenAI takes and Anthropic refuses with a 400 (a bad request the next hop, of another
 * provider, would not have made): a stop sequence of whitespace only (`stop: ["\n"]`), and a
 * tool call's id with other characters (`functions.get_weather:0` from another vendor's
 * answer). The former are dropped, as LiteLLM does; ids are rewritten alike in the assistant's
 * tool calls and the tool results that answer them, so they still pair. Blank text goes too
 * (withoutBlankText).
 */
function fitForAnthropic(options: LanguageModelV3CallOptions): void {
  options.prompt = withoutBlankText(options.prompt);
  if (options.stopSequences?.some((stop) => stop.trim() === "")) {
    const kept = options.stopSequences.filter((stop) => stop.trim() !== "");
    if (kept.length) options.stopSequences = kept;
    else delete options.stopSequences;
  }
  for (const message of options.prompt) {
    if (message.role !== "assistant" && message.role !== "tool") continue;
    for (const part of message.content) {
      if (
        (part.type === "tool-call" || part.type === "tool-result") &&
        TOOL_ID_REFUSED.test(part.toolCallId)
      ) {
        part.toolCallId = part.toolCallId.replace(TOOL_ID_REFUSED_ALL, "_");
      }
    }
  }
}

const blank = (text: string) => text.trim() === "";

/**
 * The prompt without what OpenAI takes and Anthropic answers with a 400: a system message, or a
 * text part, that is empty or whitespace only ("text content blocks must be non-empty", "... must
 * contain non-whitespace text"), and a message left with no content by that or sent with none (an
 * assistant turn of `content: ""`: "all messages must have non-empty content except for the
 * optional final assistant message"). Blank text says nothing to the model; Anthropic joins the
 * turns on either side of a dropped one. A user turn of blank text alone is sent as it was, for
 * Anthropic to refuse, as is a prompt that would be left with no message at all.
 */
function withoutBlankText(prompt: LanguageModelV3Prompt): LanguageModelV3Prompt {
  const fitted: LanguageModelV3Prompt = [];
  for (const message of prompt) {
    if (message.role === "system") {
      if (!blank(message.content)) fitted.push(message);
      continue;
    }
    if (message.role === "tool") {
      fitted.push(message);
      continue;
    }
    if (message.role === "user") {
      // A user turn of blank text only stays: without it the turn before would be the last, and
      // a last assistant turn is a prefill for Anthropic, another request than the caller's.
      const content = message.content.filter((part) => part.type !== "text" || !blank(part.text));
      fitted.push(
        content.length === 0 || content.length === message.content.length ? message : { ...message, content },
      );
      continue;
    }
    const content = message.content.filter((part) => part.type !== "text" || !blank(part.text));
    if (content.length)
      fitted.push(content.length === message.content.length ? message : { ...message, content });
  }
  return fitted.some((message) => message.role !== "system") ? fitted : prompt;
}

function adjustOptions(options: LanguageModelV3CallOptions, call: ProviderCall): void {
  options.maxOutputTokens ??= ANTHROPIC_DEFAULT_MAX_TOKENS;
  fitForAnthropic(options);
  // json_object has no schema, and the SDK drops a schemaless JSON format with only a warning
  // (Claude would answer prose). Any object schema makes it force its "json" tool instead, but
  // forcing it overrides the caller's tools: their tool_choice becomes "any" among them and the
  // json tool, one call at a time. With tools the caller may use, OpenAI's json_object leaves the
  // choice to the model, so the format stays with the prompt (which OpenAI requires to ask for JSON).
  const { tool_choice: toolChoice, response_format: format } = call.request;
  const usableTools = (call.request.tools?.length ?? 0) > 0 && toolChoice !== "none";
  if (format?.type === "json_object" && !usableTools) {
    options.responseFormat = { type: "json", schema: { type: "object" } };
  }
  // json_schema: on a model it knows to take native structured outputs the SDK sends
  // output_config.format beside the caller's tools and choice, as it should. On any other it
  // forces its "json" tool beside the caller's tools (tool_choice "any", one call at a time), which
  // serves tool_choice "auto" (the model calls a tool, or answers through the json tool, which
  // comes back as text, finish "stop"), but turns "required" or a named function into "any" among
  // the caller's tools and the json tool: the model could answer instead of calling the tool it
  // was made to. There the answer is a tool call, never text, so OpenAI's schema has nothing to
  // shape: it is not sent, and the caller's tools and choice go as they are.
  const mustCallTool = usableTools && (toolChoice === "required" || typeof toolChoice === "object");
  if (format?.type === "json_schema" && mustCallTool) delete options.responseFormat;
  // A last assistant turn, as sent (fitForAnthropic drops a blank one), is a prefill (a broken
  // stream's shown text, continued on this hop, or the caller's own): Claude is to continue it. Either JSON mode would make it start a new
  // object instead (the forced json tool answers a whole object; native structured outputs take
  // no prefill), so the JSON the prefill began goes on as text.
  if (options.prompt.at(-1)?.role === "assistant") delete options.responseFormat;
  const extra = anthropicOptions(call.request);
  if (extra) options.providerOptions = { anthropic: extra as never };
}

/**
 * Anthropic's Messages API through `@ai-sdk/anthropic`, which calls `{base_url}/messages`; one
 * `doGenerate` is one HTTP call.
 */
export function createAnthropicAdapter(
  providerId: string,
  provider: ProviderConfig,
  apiKey: string | undefined,
  fetch: typeof globalThis.fetch,
  headers?: Readonly<Record<string, string>>,
): ProviderAdapter {
  // Streams reach the SDK without event types it does not know (anthropic-events.ts).
  const client = createAnthropic(
    clientSettings(provider, ANTHROPIC_DEFAULT_BASE_URL, apiKey, knownEventsOnly(fetch), headers),
  );
  return createAiSdkAdapter({
    providerId,
    type: "anthropic",
    model: (name) => client.messages(name),
    errors: ANTHROPIC_ERRORS,
    adjustOptions,
    defaultMaxTokens: ANTHROPIC_DEFAULT_MAX_TOKENS,
    rejectGenerated: rejectAnthropicRefusal,
  });
}
