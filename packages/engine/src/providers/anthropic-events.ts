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

/** An event's end: a blank line, with either line ending (at most 4 characters). */
const EVENT_ENDS = /\r?\n\r?\n/g;
const EVENT_NAME = /^event:[ \t]*([^\r\n]*)$/m;

/**
 * Passes an SSE body on, without the events of types Anthropic's SDK does not know. Each piece of
 * text is searched once (with the 3 characters before it, where an event's end may begin): an
 * event held across many pieces is kept as its pieces and joined once it ends. (Searching the
 * whole pending text again at each piece made one 12 MB text delta take 6.9 s: failure-injection
 * probe, stop 47; bench/anthropic-events.)
 */
export class KnownEventsFilter extends TransformStream<Uint8Array, Uint8Array> {
  constructor() {
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    /** The text of the event not ended yet, in the pieces it came in. */
    let parts: string[] = [];
    /** Its last 3 characters (in `parts` too): an event's end may begin in them. */
    let tail = "";
    const known = (event: string) => {
      const name = EVENT_NAME.exec(event)?.[1];
      return name === undefined || KNOWN_EVENTS.has(name.trim());
    };
    super({
      transform(chunk, controller) {
        const text = decoder.decode(chunk, { stream: true });
        if (!text) return;
        const window = tail + text;
        let out = "";
        let from = 0;
        EVENT_ENDS.lastIndex = 0;
        for (let end = EVENT_ENDS.exec(window); end; end = EVENT_ENDS.exec(window)) {
          const to = end.index + end[0].length;
          // The first event to end began in earlier pieces (they hold `tail` already).
          const event = parts.length
            ? parts.join("") + window.slice(tail.length, to)
            : window.slice(from, to);
          parts = [];
          from = to;
          if (known(event)) out += event;
        }
        if (from === 0) parts.push(text);
        else if (from < window.length) parts = [window.slice(from)];
        tail = window.slice(Math.max(from, window.length - 3));
        if (out) controller.enqueue(encoder.encode(out));
      },
      flush(controller) {
        const pending = parts.join("") + decoder.decode();
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
