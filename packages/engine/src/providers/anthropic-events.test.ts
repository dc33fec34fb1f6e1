import { describe, expect, it } from "vitest";
import { KnownEventsFilter } from "./anthropic-events.js";

const event = (name: string, data: unknown, end = "\n") =>
  `event: ${name}${end}data: ${JSON.stringify(data)}${end}${end}`;

async function filtered(body: string, pieceBytes: number): Promise<string> {
  const bytes = new TextEncoder().encode(body);
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.length; at += pieceBytes)
        controller.enqueue(bytes.slice(at, at + pieceBytes));
      controller.close();
    },
  });
  return new Response(source.pipeThrough(new KnownEventsFilter())).text();
}

describe("KnownEventsFilter", () => {
  const known = [
    event("message_start", { type: "message_start", message: { id: "m", content: "é ✓" } }),
    event("ping", { type: "ping" }),
    event("content_block_delta", { type: "content_block_delta", index: 0, delta: { text: "héllo" } }),
    event("message_stop", { type: "message_stop" }),
  ];
  const unknown = event("future_event", { type: "future_event", detail: "x".repeat(40) });

  it.each([1, 2, 7, 64, 4096])("drops only events of unknown types, in pieces of %i bytes", async (piece) => {
    const body = [known[0], unknown, known[1], known[2], unknown, known[3]].join("");
    expect(await filtered(body, piece)).toBe(known.join(""));
  });

  it("reads CRLF line endings, and passes an event without a name or a last one with no blank line", async () => {
    const crlf = event("message_delta", { type: "message_delta" }, "\r\n");
    const nameless = 'data: {"type":"ping"}\n\n';
    const tail = 'event: message_stop\ndata: {"type":"message_stop"}';
    const body = crlf + event("brand_new", { type: "brand_new" }, "\r\n") + nameless + tail;
    expect(await filtered(body, 3)).toBe(crlf + nameless + tail);
  });

  it("finds every event's end wherever the pieces split it, a long event's too", async () => {
    const long = event("content_block_delta", {
      type: "content_block_delta",
      delta: { text: "y".repeat(5_000) },
    });
    const crlf = event("ping", { type: "ping" }, "\r\n");
    const body = [crlf, unknown, long, event("brand_new", { x: 1 }, "\r\n"), crlf, known[3]].join("");
    const expected = [crlf, long, crlf, known[3]].join("");
    for (const piece of [1, 2, 3, 4, 5, 13, 997]) expect(await filtered(body, piece)).toBe(expected);
  });
});
