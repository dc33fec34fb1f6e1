import { createGoogleGenerativeAI } from "@ai-sdk/google";
import type { LanguageModelV3GenerateResult, LanguageModelV3Prompt } from "@ai-sdk/provider";
import type { ProviderConfig } from "@cascade/shared";
import { fromGenerateResult } from "./ai-sdk/from-result.js";
import { type StreamClassifiers, type StreamedResult, streamResult } from "./ai-sdk/from-stream.js";
import { generateOrClassify, modelCache } from "./ai-sdk/models.js";
import { toCallOptions } from "./ai-sdk/to-call-options.js";
import { classifyGeminiError } from "./classify-gemini.js";
import type { ImageInliner } from "./image-download.js";
import { ProviderError } from "./provider-error.js";
import type { Completion, ProviderAdapter } from "./types.js";

type LanguageModelV3UserContentPart = Extract<
  LanguageModelV3Prompt[number],
  { role: "user" }
>["content"][number];

export const GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta";

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  heic: "image/heic",
  heif: "image/heif",
};

/**
 * Gemini needs a `mimeType` beside every `fileData.fileUri`, and @ai-sdk/google sends "image/jpeg"
 * for an image URL of unknown type; the URL's extension is a better guess when it has one.
 */
function guessImageType(url: URL): string | undefined {
  const extension = /\.([a-z0-9]+)$/i.exec(url.pathname)?.[1]?.toLowerCase();
  return extension ? IMAGE_TYPES[extension] : undefined;
}

/** An image URL part with the type its extension names, where it names one. */
function typedImage(part: LanguageModelV3UserContentPart): LanguageModelV3UserContentPart {
  if (part.type !== "file" || part.mediaType !== "image/*" || !(part.data instanceof URL)) return part;
  const mediaType = guessImageType(part.data);
  return mediaType ? { ...part, mediaType } : part;
}

/**
 * The OpenAI conversation in the shape Gemini accepts: system messages after the first non-system
 * one become user text (OpenAI allows them anywhere; @ai-sdk/google throws before calling, since
 * Gemini's systemInstruction is one block at the start), adjacent user turns are merged (older
 * Gemini models insist that turns alternate), and image URLs get a type.
 */
function forGemini(prompt: LanguageModelV3Prompt): LanguageModelV3Prompt {
  const result: LanguageModelV3Prompt = [];
  let leading = true;
  for (const message of prompt) {
    if (message.role === "system" && leading) {
      result.push(message);
      continue;
    }
    leading = false;
    if (message.role !== "system" && message.role !== "user") {
      result.push(message);
      continue;
    }
    const content: LanguageModelV3UserContentPart[] =
      message.role === "system" ? [{ type: "text", text: message.content }] : message.content.map(typedImage);
    const previous = result.at(-1);
    if (previous?.role === "user")
      result[result.length - 1] = { ...previous, content: [...previous.content, ...content] };
    else result.push({ role: "user", content });
  }
  return result;
}

interface GeminiResponseBody {
  candidates?: Array<{ finishReason?: string | null }> | null;
  promptFeedback?: { blockReason?: string | null } | null;
}

/**
 * Gemini's own ways of not answering, as reasons: a blocked prompt (`promptFeedback.blockReason`,
 * no candidates) and a filtered candidate (SAFETY, RECITATION, PROHIBITED_CONTENT, ...) are
 * content_filter; no candidate and no block reason is invalid_response.
 */
function toCompletion(result: LanguageModelV3GenerateResult): Completion {
  const body = (result.response?.body ?? {}) as GeminiResponseBody;
  const candidate = body.candidates?.[0];
  const blockReason = body.promptFeedback?.blockReason;
  if (!candidate?.finishReason && blockReason && !/UNSPECIFIED/.test(blockReason)) {
    throw new ProviderError(
      "content_filter",
      `Gemini blocked the prompt (promptFeedback.blockReason ${blockReason})`,
    );
  }
  if (result.finishReason.unified === "content-filter") {
    throw new ProviderError(
      "content_filter",
      `Gemini stopped the candidate with finishReason ${result.finishReason.raw ?? "SAFETY"}`,
    );
  }
  if (!candidate) throw new ProviderError("invalid_response", "Gemini answered without a candidate");
  return fromGenerateResult(result);
}

/** Gemini's error chunk arrives as an APICallError built from its `code`: the classifier reads it as is. */
const STREAM_CLASSIFIERS: StreamClassifiers = { classify: classifyGeminiError };

/**
 * toCompletion for a stream, which has no response body to read: the SDK reports a blocked prompt
 * (a confirmed `promptFeedback.blockReason`) and a filtered candidate as a content-filter finish.
 */
function toStreamedCompletion(result: StreamedResult): Completion {
  if (result.finishReason.unified === "content-filter") {
    const feedback = result.providerMetadata?.google?.promptFeedback as GeminiResponseBody["promptFeedback"];
    const blockReason = feedback?.blockReason;
    throw new ProviderError(
      "content_filter",
      blockReason && result.finishReason.raw === blockReason
        ? `Gemini blocked the prompt (promptFeedback.blockReason ${blockReason})`
        : `Gemini stopped the candidate with finishReason ${result.finishReason.raw ?? "SAFETY"}`,
    );
  }
  return fromGenerateResult(result);
}

/**
 * Gemini's generateContent through `@ai-sdk/google`, which calls
 * `{base_url}/models/{model}:generateContent`. One `doGenerate` is one HTTP call, except that the
 * SDK itself follows a `CONTINUATION` finish (Gemini's long-decode continuation token) with more.
 */
export function createGeminiAdapter(
  providerId: string,
  provider: ProviderConfig,
  apiKey: string | undefined,
  fetch: typeof globalThis.fetch,
  images?: ImageInliner,
): ProviderAdapter {
  // Gemini takes images as inline bytes (fileData URIs must be its own files): download them.
  const prepare = async (prompt: LanguageModelV3Prompt, signal: AbortSignal) => {
    const shaped = forGemini(prompt);
    return images ? images.inline(shaped, signal) : shaped;
  };
  const client = createGoogleGenerativeAI({
    baseURL: (provider.base_url ?? GEMINI_DEFAULT_BASE_URL).replace(/\/+$/, ""),
    // A keyless endpoint gets a placeholder, so the SDK never falls back to the worker's
    // GOOGLE_GENERATIVE_AI_API_KEY behind the config's back.
    apiKey: apiKey ?? "unused",
    fetch,
  });
  const modelFor = modelCache((name) => client.languageModel(name));
  return {
    providerId,
    type: "gemini",
    async generate(call) {
      const options = toCallOptions(call.request, call.signal);
      options.prompt = await prepare(options.prompt, call.signal);
      const model = modelFor(call.upstreamName);
      return toCompletion(await generateOrClassify(model, options, call.signal, classifyGeminiError));
    },
    // streamGenerateContent?alt=sse; usageMetadata rides on every chunk, the last one complete.
    async stream(call, sink) {
      const options = toCallOptions(call.request, call.signal);
      options.prompt = await prepare(options.prompt, call.signal);
      const model = modelFor(call.upstreamName);
      return toStreamedCompletion(await streamResult(model, options, sink, STREAM_CLASSIFIERS));
    },
  };
}
