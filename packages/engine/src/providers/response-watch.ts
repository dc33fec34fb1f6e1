/**
 * Lets a call see the first byte of its provider's answer, without the provider SDKs knowing: the
 * watched fetch looks the call up by the AbortSignal the SDK passes through to fetch (the call's
 * own signal: every AI SDK provider forwards `abortSignal` unchanged). Used for
 * `first_token_timeout_ms` on calls that are not streamed ("first byte when not streaming"), where
 * response headers alone may come long before the answer.
 */
const watchers = new WeakMap<AbortSignal, () => void>();

/** Calls `onFirstByte` once the response to a fetch made with `signal` has sent a byte of its body. */
export function watchResponse(signal: AbortSignal, onFirstByte: () => void): void {
  watchers.set(signal, onFirstByte);
}

export function unwatchResponse(signal: AbortSignal): void {
  watchers.delete(signal);
}

/** The first-byte callback of a watched call, for clients that read the answer themselves. */
export function firstByteWatcher(signal: AbortSignal): (() => void) | undefined {
  return watchers.get(signal);
}

/** The same response, reporting the first chunk of its body (or its end, if it has none). */
function reportingFirstByte(response: Response, onFirstByte: () => void): Response {
  const body = response.body;
  if (!body) {
    onFirstByte();
    return response;
  }
  const reader = body.getReader();
  let reported = false;
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (!reported) {
        reported = true;
        onFirstByte();
      }
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(watched, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/** A fetch that reports the first byte of a watched call's answer; unwatched calls pass untouched. */
export function watchedFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const signal = init?.signal;
    const onFirstByte = signal ? watchers.get(signal) : undefined;
    return onFirstByte ? reportingFirstByte(response, onFirstByte) : response;
  };
}
