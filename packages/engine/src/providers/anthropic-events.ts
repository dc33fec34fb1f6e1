/**
 * The event types of Anthropic's Messages stream that @ai-sdk/anthropic reads. Anthropic may add
 * event types and asks clients to ignore those they do not know
 * (https://docs.anthropic.com/en/docs/build-with-claude/streaming#other-events); the SDK instead
 * turns any event its schema lacks into an error, which would fail every Claude stream the day
 * Anthropic ships one (and open the provider's breaker).
 */
const KNOWN_EVENTS = new Set([
  "message_start",
  "content_block_start",
  "content_block_delta",
  "content_block_stop",
  "message_delta",
  "message_stop",
  "ping",
  "error",
]);

/** An event's end: a blank line, with either line ending. */
const EVENT_END = /\r?\n\r?\n/;
const EVENT_NAME = /^event:[ \t]*([^\r\n]*)$/m;

/** Passes an SSE body on, without the events of types Anthropic's SDK does not know. */
export class KnownEventsFilter extends TransformStream<Uint8Array, Uint8Array> {
  constructor() {
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let pending = "";
    const known = (event: string) => {
      const name = EVENT_NAME.exec(event)?.[1];
      return name === undefined || KNOWN_EVENTS.has(name.trim());
    };
    super({
      transform(chunk, controller) {
        pending += decoder.decode(chunk, { stream: true });
        let out = "";
        for (let end = EVENT_END.exec(pending); end; end = EVENT_END.exec(pending)) {
          const event = pending.slice(0, end.index + end[0].length);
          pending = pending.slice(event.length);
          if (known(event)) out += event;
        }
        if (out) controller.enqueue(encoder.encode(out));
      },
      flush(controller) {
        pending += decoder.decode();
        if (pending && known(pending)) controller.enqueue(encoder.encode(pending));
      },
    });
  }
}

/** `fetch`, with a 2xx event stream's unknown event types dropped (KnownEventsFilter). */
export function knownEventsOnly(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !response.body || !type.includes("text/event-stream")) return response;
    return new Response(response.body.pipeThrough(new KnownEventsFilter()), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}
