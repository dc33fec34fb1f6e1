import type { LanguageModelV3Prompt } from "@ai-sdk/provider";
import { type Agent, fetch as undiciFetch } from "undici";
import { createGuardedDispatcher, findUrlRejection } from "../outbound/guarded-dispatcher.js";
import { ProviderError } from "./provider-error.js";

export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_MS = 15_000;

export interface ImageInliner {
  /** The prompt with every http(s) image URL replaced by the image's bytes. */
  inline(prompt: LanguageModelV3Prompt, signal: AbortSignal): Promise<LanguageModelV3Prompt>;
}

/**
 * Downloads image URLs for providers that need the bytes inline (Gemini's API takes only its own
 * file URIs). The same guard as webhooks applies: every connection is checked against private,
 * loopback, link-local and metadata addresses at connect time (unless `allow_private_networks`),
 * bodies are capped at 20 MiB and must be images. A failed download is provider-specific (a
 * provider that fetches URLs itself may still manage), so the chain moves on.
 */
export function createImageInliner(options: {
  allowPrivateNetworks: boolean;
  maxBytes?: number;
  timeoutMs?: number;
  dispatcher?: Agent;
}): ImageInliner {
  const dispatcher =
    options.dispatcher ?? createGuardedDispatcher({ allowPrivateNetworks: options.allowPrivateNetworks });
  const maxBytes = options.maxBytes ?? MAX_IMAGE_BYTES;
  const refuse = (url: URL, why: string, cause?: unknown) =>
    new ProviderError("bad_request", `could not download image ${url.origin}${url.pathname}: ${why}`, {
      providerSpecific: true,
      cause,
      unsent: true,
    });

  async function download(url: URL, signal: AbortSignal): Promise<{ data: Uint8Array; mediaType: string }> {
    const timeout = AbortSignal.timeout(options.timeoutMs ?? DOWNLOAD_TIMEOUT_MS);
    let response: Awaited<ReturnType<typeof undiciFetch>>;
    try {
      response = await undiciFetch(url, {
        dispatcher,
        signal: AbortSignal.any([signal, timeout]),
        redirect: "follow",
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const rejection = findUrlRejection(error);
      throw refuse(
        url,
        rejection
          ? `refused: ${rejection.message}`
          : timeout.aborted
            ? "timed out"
            : String((error as Error).message),
        error,
      );
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw refuse(url, `HTTP ${response.status}`);
    }
    const mediaType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    if (!mediaType.startsWith("image/")) {
      await response.body?.cancel().catch(() => {});
      throw refuse(url, `content-type "${mediaType || "none"}" is not an image`);
    }
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > maxBytes) {
      await response.body?.cancel().catch(() => {});
      throw refuse(url, `${declared} bytes is over the ${maxBytes}-byte limit`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        if (size > maxBytes) throw refuse(url, `over the ${maxBytes}-byte limit`);
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof ProviderError) throw error;
      if (signal.aborted) throw signal.reason;
      // Cut or stalled while its bytes came: the image host's fault, not the provider's (nothing
      // went to it), so not a failure its breaker counts.
      throw refuse(
        url,
        timeout.aborted ? "timed out" : `broke off: ${String((error as Error).message)}`,
        error,
      );
    }
    return { data: Buffer.concat(chunks), mediaType };
  }

  return {
    async inline(prompt, signal) {
      const downloads = new Map<string, Promise<{ data: Uint8Array; mediaType: string }>>();
      const fetchOnce = (url: URL) => {
        let pending = downloads.get(url.href);
        if (!pending) {
          pending = download(url, signal);
          downloads.set(url.href, pending);
        }
        return pending;
      };
      return Promise.all(
        prompt.map(async (message) => {
          if (message.role !== "user") return message;
          const content = await Promise.all(
            message.content.map(async (part) => {
              if (
                part.type !== "file" ||
                !(part.data instanceof URL) ||
                !/^https?:$/.test(part.data.protocol)
              )
                return part;
              const image = await fetchOnce(part.data);
              return { ...part, data: image.data, mediaType: image.mediaType };
            }),
          );
          return { ...message, content };
        }),
      );
    },
  };
}
