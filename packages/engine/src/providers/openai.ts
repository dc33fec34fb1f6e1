import { createHash } from "node:crypto";
import { createOpenAI } from "@ai-sdk/openai";
import type { LanguageModelV3CallOptions } from "@ai-sdk/provider";
import type { ProviderConfig } from "@cascade/shared";
import type { Dispatcher } from "undici";
import { createAiSdkAdapter } from "./ai-sdk/adapter.js";
import { clientSettings } from "./ai-sdk/client-settings.js";
import { classifyOpenAIError, OPENAI_ERRORS } from "./errors-openai.js";
import { createLeanChatGenerate } from "./openai-lean/chat-client.js";
import { createLeanChatStream } from "./openai-lean/chat-stream.js";
import { noteUnsentFields } from "./openai-names.js";
import type { ProviderAdapter, ProviderCall } from "./types.js";

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";

/** Service tiers the SDK passes on (OpenAI's `scale` tier it does not know is left out). */
const SDK_SERVICE_TIERS = new Set(["auto", "default", "flex", "priority"]);

/** Whether a provider gets OpenAI's own request fields (its `openai_fields`, else by its host). */
export function forwardsOpenAIFields(provider: Pick<ProviderConfig, "base_url" | "openai_fields">): boolean {
  if (provider.openai_fields !== undefined) return provider.openai_fields === "forward";
  const url = new URL(provider.base_url ?? OPENAI_DEFAULT_BASE_URL);
  const host = url.hostname;
  if (host === "api.openai.com" || host.endsWith(".openai.azure.com")) return true;
  // AI Services and AI Foundry hosts serve other vendors' models too (under /models): their Azure
  // OpenAI endpoints are the ones under /openai.
  return (
    (host.endsWith(".cognitiveservices.azure.com") || host.endsWith(".services.ai.azure.com")) &&
    url.pathname.startsWith("/openai")
  );
}

/** Whether the provider is Mistral's API (its hosts), which has rules of its own. */
function isMistralHost(provider: Pick<ProviderConfig, "base_url">): boolean {
  const host = new URL(provider.base_url ?? OPENAI_DEFAULT_BASE_URL).hostname;
  return host === "mistral.ai" || host.endsWith(".mistral.ai");
}

const MISTRAL_TOOL_ID = /^[a-zA-Z0-9]{9}$/;
const BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** The same 9 characters of a-z, A-Z, 0-9 for the same id, on every call: a hash of it. */
export function mistralToolId(id: string): string {
  const digest = createHash("sha256").update(id).digest();
  let out = "";
  for (let index = 0; index < 9; index++) out += BASE62[(digest[index] ?? 0) % 62];
  return out;
}

/**
 * Mistral takes tool call ids of exactly 9 letters and digits only, and answers any other (OpenAI's
 * `call_…`, Anthropic's `toolu_…`, a generated one from Gemini's answers) with a 400 "Tool call id
 * was … but must be a-z, A-Z, 0-9, with a length of 9.": a conversation with another vendor's
 * tool calls failed the job. Such ids are rewritten alike in the assistant's tool calls and the
 * tool results that answer them, so they still pair (and stay the same from call to call).
 */
function fitToolIdsForMistral(options: LanguageModelV3CallOptions): void {
  for (const message of options.prompt) {
    if (message.role !== "assistant" && message.role !== "tool") continue;
    for (const part of message.content) {
      if (part.type === "tool-call" || part.type === "tool-result")
        part.toolCallId = fitMistralToolId(part.toolCallId);
    }
  }
}

/** A tool call id as Mistral is sent it: kept when it is 9 letters and digits, else its hash. */
function fitMistralToolId(id: string): string {
  return MISTRAL_TOOL_ID.test(id) ? id : mistralToolId(id);
}

/**
 * Whether a streamed call may ask for `stream_options: {include_usage: true}` (the SDK always
 * does): the provider's `stream_options`, else by host. Mistral's API validates bodies strictly
 * and answers it with a 422 `extra_forbidden` ("Extra inputs are not permitted", loc
 * body.stream_options), so every streamed call to Mistral failed and fell back; its streams carry
 * `usage` in their last chunk without being asked.
 */
export function asksStreamUsage(provider: Pick<ProviderConfig, "base_url" | "stream_options">): boolean {
  if (provider.stream_options !== undefined) return provider.stream_options === "send";
  return !isMistralHost(provider);
}

/**
 * A fetch that takes `stream_options` out of a streamed request's JSON body, for the SDK's own
 * doStream (used where the lean stream is not) towards a provider that refuses the field.
 */
function withoutStreamOptions(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    if (typeof init?.body === "string" && init.body.includes('"stream_options"')) {
      const body = JSON.parse(init.body) as Record<string, unknown>;
      delete body.stream_options;
      return fetch(input, { ...init, body: JSON.stringify(body) });
    }
    return fetch(input, init);
  };
}

/** OpenAI's own fields of the request, as the SDK's provider options. */
function openAIOwnOptions(request: ProviderCall["request"], extra: Record<string, unknown>): void {
  if (request.reasoning_effort !== undefined) extra.reasoningEffort = request.reasoning_effort;
  if (request.service_tier !== undefined && SDK_SERVICE_TIERS.has(request.service_tier))
    extra.serviceTier = request.service_tier;
  if (request.store !== undefined) extra.store = request.store;
  if (request.logit_bias !== undefined) extra.logitBias = request.logit_bias;
  if (request.prompt_cache_key !== undefined) extra.promptCacheKey = request.prompt_cache_key;
  if (request.safety_identifier !== undefined) extra.safetyIdentifier = request.safety_identifier;
  if (request.verbosity !== undefined) extra.textVerbosity = request.verbosity;
  if (request.prediction !== undefined) extra.prediction = request.prediction;
  // The SDK's `logprobs` option: a number is `top_logprobs` (sent with `logprobs: true`), `true`
  // sends `top_logprobs: 0`, OpenAI's default. `top_logprobs` without `logprobs: true` is refused
  // at the doors; in a job queued before that check it asks for nothing, so nothing is sent. (The
  // SDK leaves both out for reasoning models, as OpenAI refuses them.)
  if (request.logprobs === true) extra.logprobs = request.top_logprobs ?? true;
}

/** OpenAI request fields the SDK takes as provider options rather than call options. */
function adjustOptions(
  options: LanguageModelV3CallOptions,
  call: ProviderCall,
  ownFields: boolean,
  mistral: boolean,
): void {
  if (mistral) fitToolIdsForMistral(options);
  // Messages' names and raw tool arguments go back into the body the SDK builds (openai-names.ts).
  noteUnsentFields(options.abortSignal, call.request, mistral ? fitMistralToolId : undefined);
  // A stream's raw chunks tell a refusal's text (`delta.refusal`) from content (readStream).
  if (call.request.stream === true) options.includeRawChunks = true;
  const extra: Record<string, unknown> = {};
  if (call.request.parallel_tool_calls !== undefined)
    extra.parallelToolCalls = call.request.parallel_tool_calls;
  if (call.request.user !== undefined) extra.user = call.request.user;
  // The SDK sends `strict: true` unless told otherwise; OpenAI's default, and the caller's
  // choice, is what goes (a non-strict schema sent as strict is a 400 at OpenAI).
  const format = call.request.response_format;
  if (format?.type === "json_schema") extra.strictJsonSchema = format.json_schema.strict === true;
  if (ownFields) openAIOwnOptions(call.request, extra);
  if (Object.keys(extra).length) options.providerOptions = { openai: extra as never };
}

/**
 * Any OpenAI-compatible endpoint through `@ai-sdk/openai`'s `.chat()` model, which calls
 * `{base_url}/chat/completions` (the default factory would call `/responses`). The SDK always asks
 * for `stream_options: {include_usage: true}`, so a stream's finish carries usage (except from
 * Mistral, which refuses the field and sends usage unasked: asksStreamUsage).
 */
export function createOpenAIAdapter(
  providerId: string,
  provider: ProviderConfig,
  apiKey: string | undefined,
  fetch: typeof globalThis.fetch,
  headers?: Readonly<Record<string, string>>,
  options: {
    /**
     * The provider's connection pool. Given, calls skip fetch and the SDK's response handling:
     * non-streamed (the lean client, ADR 0022) and streamed (ADR 0031) alike.
     */
    dispatcher?: Dispatcher;
  } = {},
): ProviderAdapter {
  const streamUsage = asksStreamUsage(provider);
  const mistral = isMistralHost(provider);
  const client = createOpenAI(
    clientSettings(
      provider,
      OPENAI_DEFAULT_BASE_URL,
      apiKey,
      streamUsage ? fetch : withoutStreamOptions(fetch),
      headers,
    ),
  );
  const { dispatcher } = options;
  const ownFields = forwardsOpenAIFields(provider);
  return createAiSdkAdapter({
    providerId,
    type: "openai",
    model: (name) => client.chat(name),
    errors: OPENAI_ERRORS,
    adjustOptions: (callOptions, call) => adjustOptions(callOptions, call, ownFields, mistral),
    ...(dispatcher
      ? {
          generateWith: (sdkGenerate) => createLeanChatGenerate(dispatcher, classifyOpenAIError, sdkGenerate),
          streamWith: (sdkStream) => createLeanChatStream(dispatcher, OPENAI_ERRORS, sdkStream, streamUsage),
        }
      : {}),
  });
}
