/**
 * Lets a call see when its provider's response headers arrive, without the provider SDKs knowing:
 * the watched fetch looks the call up by the AbortSignal the SDK passes through to fetch (the
 * call's own signal: every AI SDK provider forwards `abortSignal` unchanged). Used for
 * `first_token_timeout_ms` on calls that are not streamed, where the headers come with the answer.
 */
const watchers = new WeakMap<AbortSignal, () => void>();

/** Calls `onHeaders` once the response to a fetch made with `signal` has its headers. */
export function watchResponse(signal: AbortSignal, onHeaders: () => void): void {
  watchers.set(signal, onHeaders);
}

export function unwatchResponse(signal: AbortSignal): void {
  watchers.delete(signal);
}

/** A fetch that reports response headers to the call watching its signal. */
export function watchedFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const signal = init?.signal;
    if (signal) watchers.get(signal)?.();
    return response;
  };
}
