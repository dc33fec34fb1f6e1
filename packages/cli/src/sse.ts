import { type ApiClient, ApiError, errorFrom, isAbortError, NetworkError, sleep } from "./api-client.js";

/** One Server-Sent Event, as EventSource would dispatch it. */
export interface SseEvent {
  /** The last event id seen on the stream (EventSource's lastEventId). */
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * Parses an SSE byte stream: `id`, `event`, `data` (joined by newlines) and `retry` fields; comment
 * lines (heartbeats) are skipped. Yields each event when its blank line arrives.
 * Kept instead of eventsource-parser 3.x (4.x needs Node 22): this is ~35 lines against its ~180,
 * and it keeps EventSource's lastEventId across events, where the library reports each event's
 * own id and forgets an id sent without data; both would have to be added back around it.
 */
export async function* parseSse(
  body: AsyncIterable<Uint8Array>,
  onRetry?: (milliseconds: number) => void,
): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let lastId: string | undefined;
  let event = "";
  let data: string[] = [];
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline = buffer.search(/\r\n|\r|\n/);
    while (newline >= 0) {
      // A lone CR at the end may be the first half of a CRLF still on its way.
      if (buffer[newline] === "\r" && newline === buffer.length - 1) break;
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      newline = buffer.search(/\r\n|\r|\n/);
      if (line === "") {
        if (data.length) yield { id: lastId, event: event || "message", data: data.join("\n") };
        event = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
      else if (field === "id" && !value.includes("\0")) lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) onRetry?.(Number(value));
    }
  }
}

export interface FollowOptions {
  /** Handles one event; return true to stop following (the stream's last event). */
  onEvent(event: SseEvent): boolean | undefined;
  /** Told before each reconnect, with the id it resumes after. */
  onReconnect?(lastEventId: string | undefined, reason: string): void;
  signal?: AbortSignal;
  /** Consecutive failed connections before giving up (default 10). */
  maxFailures?: number;
}

/**
 * Follows an SSE endpoint until `onEvent` says stop: on a dropped connection (or a stream that
 * ends early) it reconnects after the server's `retry` delay, sending Last-Event-ID so nothing is
 * seen twice. A 4xx answer is an ApiError at once; network errors and 5xx are retried.
 */
export async function followSse(client: ApiClient, path: string, options: FollowOptions): Promise<void> {
  let lastEventId: string | undefined;
  let retryMs = 2000;
  let failures = 0;
  const maxFailures = options.maxFailures ?? 10;
  for (;;) {
    let reason: string;
    try {
      const response = await client.raw("GET", path, {
        headers: {
          accept: "text/event-stream",
          ...(lastEventId !== undefined ? { "last-event-id": lastEventId } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (!response.ok || !response.body) {
        const text = await response.text().catch(() => "");
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {}
        throw errorFrom(response, body);
      }
      for await (const event of parseSse(
        response.body as unknown as AsyncIterable<Uint8Array>,
        (milliseconds) => {
          retryMs = milliseconds;
        },
      )) {
        failures = 0;
        if (event.id !== undefined) lastEventId = event.id;
        if (options.onEvent(event)) return;
      }
      reason = "the server closed the stream";
    } catch (error) {
      if (isAbortError(error) && options.signal?.aborted) throw error;
      if (error instanceof ApiError && !error.retryable) throw error;
      reason =
        error instanceof NetworkError || error instanceof ApiError
          ? error.message
          : `connection lost (${(error as Error).message})`;
    }
    failures += 1;
    if (failures > maxFailures) {
      throw new NetworkError(`gave up following ${path} after ${maxFailures} failed connections: ${reason}`);
    }
    options.onReconnect?.(lastEventId, reason);
    await sleep(failures === 1 ? Math.min(retryMs, 500) : retryMs, options.signal);
  }
}
