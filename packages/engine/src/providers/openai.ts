import { createOpenAI } from "@ai-sdk/openai";
import type { ProviderConfig } from "@cascade/shared";
import { fromGenerateResult } from "./ai-sdk/from-result.js";
import { type StreamClassifiers, streamResult } from "./ai-sdk/from-stream.js";
import { generateOrClassify, modelCache } from "./ai-sdk/models.js";
import { toCallOptions } from "./ai-sdk/to-call-options.js";
import { classifyOpenAIError } from "./classify-openai.js";
import { classifyOpenAIErrorEvent } from "./stream-error-events.js";
import type { ProviderAdapter, ProviderCall } from "./types.js";

const STREAM_CLASSIFIERS: StreamClassifiers = {
  classify: classifyOpenAIError,
  classifyEvent: classifyOpenAIErrorEvent,
};

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";

/**
 * Any OpenAI-compatible endpoint through `@ai-sdk/openai`'s `.chat()` model, which calls
 * `{base_url}/chat/completions` (the default factory would call `/responses`).
 */
export function createOpenAIAdapter(
  providerId: string,
  provider: ProviderConfig,
  apiKey: string | undefined,
  fetch: typeof globalThis.fetch,
): ProviderAdapter {
  const client = createOpenAI({
    baseURL: (provider.base_url ?? OPENAI_DEFAULT_BASE_URL).replace(/\/+$/, ""),
    // Local servers (Ollama, vLLM) need no key; the SDK would otherwise read OPENAI_API_KEY itself.
    apiKey: apiKey ?? "unused",
    fetch,
  });
  const modelFor = modelCache((name) => client.chat(name));
  const callOptions = (call: ProviderCall) => {
    const options = toCallOptions(call.request, call.signal);
    const extra: Record<string, unknown> = {};
    if (call.request.parallel_tool_calls !== undefined)
      extra.parallelToolCalls = call.request.parallel_tool_calls;
    if (call.request.user !== undefined) extra.user = call.request.user;
    if (Object.keys(extra).length) options.providerOptions = { openai: extra as never };
    return options;
  };
  return {
    providerId,
    type: "openai",
    async generate(call) {
      const model = modelFor(call.upstreamName);
      return fromGenerateResult(
        await generateOrClassify(model, callOptions(call), call.signal, classifyOpenAIError),
      );
    },
    // The SDK always asks for `stream_options: {include_usage: true}`, so the finish carries usage.
    async stream(call, sink) {
      const model = modelFor(call.upstreamName);
      return fromGenerateResult(await streamResult(model, callOptions(call), sink, STREAM_CLASSIFIERS));
    },
  };
}
