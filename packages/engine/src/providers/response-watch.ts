import { AsyncLocalStorage } from "node:async_hooks";
import { nameMessagesInJson } from "./openai-names.js";

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
const sentWatchers = new WeakMap<AbortSignal, () => void>();

/**
 * The sent callback of the call whose fetch is under way, for the provider dispatcher's
 * interceptor (http.ts), which runs in the fetch's async context when fetch dispatches.
 */
export const sendingCall = new AsyncLocalStorage<() => void>();

/**
 * Calls `onSent` once the request of a call made with `signal` goes out: written on a socket, as
 * undici's onRequestStart says right before the write (the lean client hears it itself; the SDKs'
 * fetch through the provider dispatcher's interceptor). A call abandoned before that, waiting
 * for a connection, reached no provider.
 */
export function watchSent(signal: AbortSignal, onSent: () => void): void {
  sentWatchers.set(signal, onSent);
}

/** The sent callback of a watched call, for clients that write the request themselves. */
export function sentWatcher(signal: AbortSignal): (() => void) | undefined {
  return sentWatchers.get(signal);
}

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
  sentWatchers.delete(signal);
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
    // A streamed openai-type call's body gets its messages' names back (openai-names.ts).
    if (init?.signal && typeof init.body === "string" && String(input).endsWith("/chat/completions")) {
      const body = nameMessagesInJson(init.signal, init.body);
      if (body !== init.body) init = { ...init, body };
    }
    const signal = init?.signal;
    const sent = signal ? sentWatchers.get(signal) : undefined;
    const response = sent ? await sendingCall.run(sent, fetch, input, init) : await fetch(input, init);
    if (!signal) return response;
    // Chunks of a 2xx answer only: an error's body is no sign of a stream going on.
    const onChunk = chunkWatchers.get(signal);
    if (onChunk) return response.ok ? reportingChunks(response, onChunk, true) : response;
    const onFirstByte = watchers.get(signal);
    return onFirstByte ? reportingChunks(response, onFirstByte, false) : response;
  };
}
