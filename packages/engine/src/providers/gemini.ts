import { createGoogleGenerativeAI } from "@ai-sdk/google";
import type { LanguageModelV3CallOptions, LanguageModelV3Prompt } from "@ai-sdk/provider";
import type { ProviderConfig } from "@cascade/shared";
import { createAiSdkAdapter } from "./ai-sdk/adapter.js";
import { clientSettings } from "./ai-sdk/client-settings.js";
import { GEMINI_ERRORS, rejectGeminiRefusal, rejectGeminiStreamedRefusal } from "./errors-gemini.js";
import { markTurnsToJoin, withAlternatingTurns } from "./gemini-turns.js";
import type { ImageInliner } from "./image-download.js";
import type { ProviderAdapter, ProviderCall } from "./types.js";

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
 * Gemini's systemInstruction is one block at the start), adjacent user turns and adjacent
 * assistant turns are merged (Gemini insists that turns alternate), the results of one turn's
 * parallel tool calls go in one turn, and image URLs get a type. Tool results followed by user
 * text are joined in the request body (gemini-turns.ts), which is the only place they can be.
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
    if (message.role === "tool") {
      // OpenAI answers parallel tool calls with a message each; Gemini wants one turn holding a
      // functionResponse for each functionCall of the turn before (else a 400), so they join.
      const previous = result.at(-1);
      if (previous?.role === "tool")
        result[result.length - 1] = { ...previous, content: [...previous.content, ...message.content] };
      else result.push(message);
      continue;
    }
    if (message.role === "assistant") {
      // An assistant turn with nothing in it (OpenAI's `content: ""`) would be a model turn of no
      // parts, which Gemini answers with a 400 ("contents.parts must not be empty"): it says
      // nothing, so it goes, and the user turns on either side join.
      if (!message.content.length) continue;
      // Two assistant messages in a row (OpenAI takes them) would be two model turns.
      const previous = result.at(-1);
      if (previous?.role === "assistant")
        result[result.length - 1] = { ...previous, content: [...previous.content, ...message.content] };
      else result.push(message);
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

/** Gemini 1.x and 2.x by name (`gemini-2.5-flash`, `models/gemini-2.0-flash-001`, `gemini-pro`). */
const OLDER_GEMINI = /(^|\/)gemini-(?:[12](?:[.-]|$)|pro(?:-vision)?$)/i;

/** Whether an upstream name reads as Gemini 1.x or 2.x (which take no JSON mode beside tools). */
export function isOlderGemini(name: string): boolean {
  return OLDER_GEMINI.test(name);
}

/**
 * Gemini before 3 answers a JSON response mime type beside function declarations with a 400
 * ("Function calling with a response mime type: 'application/json' is unsupported"), whatever the
 * tool choice; OpenAI takes both. There the format is left to the prompt (OpenAI's json_object
 * requires the prompt to ask for JSON), as for Claude with tools (ADR 0036); Gemini 3 (and names
 * not known to be older, as @ai-sdk/google reads them) gets both.
 */
function adjustOptions(options: LanguageModelV3CallOptions, call: ProviderCall): void {
  if (
    options.responseFormat?.type === "json" &&
    options.tools?.some((tool) => tool.type === "function") &&
    isOlderGemini(call.upstreamName)
  )
    delete options.responseFormat;
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
  headers?: Readonly<Record<string, string>>,
): ProviderAdapter {
  const client = createGoogleGenerativeAI(
    // Turns alternate on the wire: tool results and the user's text after them are one turn.
    clientSettings(provider, GEMINI_DEFAULT_BASE_URL, apiKey, withAlternatingTurns(fetch), headers),
  );
  return createAiSdkAdapter({
    providerId,
    type: "gemini",
    model: (name) => client.languageModel(name),
    errors: GEMINI_ERRORS,
    adjustOptions,
    // Gemini takes images as inline bytes (fileData URIs must be its own files): download them.
    async preparePrompt(prompt, signal) {
      const shaped = forGemini(prompt);
      markTurnsToJoin(shaped, signal);
      return images ? images.inline(shaped, signal) : shaped;
    },
    rejectGenerated: rejectGeminiRefusal,
    // streamGenerateContent?alt=sse; usageMetadata rides on every chunk, the last one complete.
    rejectStreamed: rejectGeminiStreamedRefusal,
  });
}
