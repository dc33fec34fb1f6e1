import { restoreUnsentFieldsInJson } from "./openai-names.js";

/**
 * Lets a call see the bytes of its provider's answer arrive, without the provider SDKs knowing:
 * the watched fetch looks the call up by the AbortSignal the SDK passes through to fetch (the
 * call's own signal: every AI SDK provider forwards `abortSignal` unchanged). Used for
 * `first_token_timeout_ms` on calls that are not streamed ("first byte when not streaming"), where
 * response headers alone may come long before the answer, and for `idle_timeout_ms` on streams,
 * where a chunk that is no token (the finish, the usage, `[DONE]`, a keep-alive comment) still
 * shows the provider is not silent.
 */
const watchers = new WeakMap<AbortSignal, () => void>();
const chunkWatchers = new WeakMap<AbortSignal, () => void>();

/** Calls `onFirstByte` once the response to a fetch made with `signal` has sent a byte of its body. */
export function watchResponse(signal: AbortSignal, onFirstByte: () => void): void {
  watchers.set(signal, onFirstByte);
}

/**
 * Calls `onChunk` for every chunk of the body of a 2xx response to a fetch made with `signal`
 * that holds an SSE event's data (`data:`): a provider's token, finish, usage or ping, not a
 * proxy's keep-alive comment (`: PROCESSING`), which says nothing of the model's stream.
 */
export function watchChunks(signal: AbortSignal, onChunk: () => void): void {
  chunkWatchers.set(signal, onChunk);
}

export function unwatchResponse(signal: AbortSignal): void {
  watchers.delete(signal);
  chunkWatchers.delete(signal);
}

/** The first-byte callback of a watched call, for clients that read the answer themselves. */
export function firstByteWatcher(signal: AbortSignal): (() => void) | undefined {
  return watchers.get(signal);
}

/** The chunk callback of a watched stream, for clients that read the answer themselves. */
export function chunkWatcher(signal: AbortSignal): (() => void) | undefined {
  return chunkWatchers.get(signal);
}

/** Whether a piece of an event stream holds (the start of) an event's data. */
export function holdsData(value: Uint8Array | undefined): boolean {
  return (
    value !== undefined && Buffer.from(value.buffer, value.byteOffset, value.byteLength).includes("data:")
  );
}

/**
 * The same response, reporting the first chunk of its body (or its end, if it has none), or with
 * `events`, each chunk that holds an event's data (holdsData).
 */
function reportingChunks(response: Response, onChunk: () => void, events: boolean): Response {
  const body = response.body;
  if (!body) {
    if (!events) onChunk();
    return response;
  }
  const reader = body.getReader();
  let reported = false;
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (events ? holdsData(value) : !reported) {
        reported = true;
        onChunk();
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

/** A fetch that reports the bytes of a watched call's answer; unwatched calls pass untouched. */
export function watchedFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    // A streamed openai-type call's body gets its messages' unsent fields back (openai-names.ts).
    if (init?.signal && typeof init.body === "string" && String(input).endsWith("/chat/completions")) {
      const body = restoreUnsentFieldsInJson(init.signal, init.body);
      if (body !== init.body) init = { ...init, body };
    }
    const response = await fetch(input, init);
    const signal = init?.signal;
    if (!signal) return response;
    // Chunks of a 2xx answer only: an error's body is no sign of a stream going on.
    const onChunk = chunkWatchers.get(signal);
    if (onChunk) return response.ok ? reportingChunks(response, onChunk, true) : response;
    const onFirstByte = watchers.get(signal);
    return onFirstByte ? reportingChunks(response, onFirstByte, false) : response;
  };
}
