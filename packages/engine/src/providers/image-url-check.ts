import type { ChatMessage } from "@cascade/shared";
import {
  findPrivateImageHost,
  hasRemoteImageUrl,
  type ImageUrlRefusal,
} from "../outbound/image-url-guard.js";
import type { HostResolver } from "../outbound/url-guard.js";
import { ProviderError } from "./provider-error.js";
import type { ProviderAdapter, ProviderCall } from "./types.js";

export interface ImageUrlCheckOptions {
  /** Resolver for image URLs' host names (tests play DNS with it); the system's by default. */
  resolve?: HostResolver;
  /** How long a name may take to resolve before it passes unjudged (default 2 s). */
  timeoutMs?: number;
}

/**
 * An adapter of a provider that fetches image URLs itself (openai-type: any OpenAI-compatible
 * endpoint, which may run on the operator's own network; anthropic, whose URL image sources go to
 * its base_url): before each call that carries http(s) image URLs, their hosts are checked again,
 * names resolved (findPrivateImageHost). A refused one fails the call as `bad_request` naming the
 * field, before anything is sent (so nothing is charged, and the attempt is `skipped`): the request
 * is wrong, the chain stops (or, with `on_bad_request: fallback`, moves on). A call without image URLs pays one scan of
 * its messages. The answer is kept per request (its messages), for its retries and later hops,
 * and for no other request. Used only when `webhooks.allow_private_networks` is false.
 */
export function withImageUrlCheck(
  adapter: ProviderAdapter,
  options: ImageUrlCheckOptions = {},
): ProviderAdapter {
  const checked = new WeakMap<readonly ChatMessage[], Promise<ImageUrlRefusal | undefined>>();
  const check = async (call: ProviderCall): Promise<void> => {
    const { messages } = call.request;
    let verdict = checked.get(messages);
    if (!verdict) {
      verdict = findPrivateImageHost(messages, options);
      checked.set(messages, verdict);
    }
    const refusal = await verdict;
    // Not checked in time: the next hop (or retry) asks again, its lookup may have ended by then.
    if (refusal?.unchecked && checked.get(messages) === verdict) checked.delete(messages);
    if (call.signal.aborted) throw call.signal.reason;
    // A host that could not be checked in time is this call's problem, not the request's: the
    // chain moves on (a provider that needs no check, or a later try), as for provider-specific 400s.
    if (refusal)
      throw new ProviderError("bad_request", refusal.message, {
        param: refusal.param,
        providerSpecific: refusal.unchecked === true,
        unsent: true,
      });
  };
  // A call without image URLs (nearly all) goes straight through: no extra promise on the hot path.
  const wrapped: ProviderAdapter = {
    providerId: adapter.providerId,
    type: adapter.type,
    generate(call) {
      if (!hasRemoteImageUrl(call.request.messages)) return adapter.generate(call);
      return check(call).then(() => adapter.generate(call));
    },
    stream(call, sink) {
      if (!hasRemoteImageUrl(call.request.messages)) return adapter.stream(call, sink);
      return check(call).then(() => adapter.stream(call, sink));
    },
  };
  if (adapter.defaultMaxTokens === undefined) return wrapped;
  return { ...wrapped, defaultMaxTokens: adapter.defaultMaxTokens };
}
