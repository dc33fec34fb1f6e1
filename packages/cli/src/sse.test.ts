import { describe, expect, it } from "vitest";
import { parseSse, type SseEvent } from "./sse.js";

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield new TextEncoder().encode(part);
}

async function collect(parts: string[], onRetry?: (milliseconds: number) => void): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of parseSse(chunks(...parts), onRetry)) events.push(event);
  return events;
}

describe("parseSse", () => {
  it("parses events split anywhere across chunks, with CRLF, comments and multi-line data", async () => {
    const retries: number[] = [];
    const events = await collect(
      [
        "retry: 2000\n\n: keep-alive\n\nid: 1\nevent: sta",
        'tus\ndata: {"status":"queued"}\r',
        "\n\r\nid: 2\n",
        "data: a\ndata: b\n\n",
      ],
      (milliseconds) => retries.push(milliseconds),
    );
    expect(retries).toEqual([2000]);
    expect(events).toEqual([
      { id: "1", event: "status", data: '{"status":"queued"}' },
      { id: "2", event: "message", data: "a\nb" },
    ]);
  });

  it("keeps the last id for events without one, and drops an event cut before its blank line", async () => {
    const events = await collect([
      "id: 7\nevent: delta\ndata: x\n\nevent: delta\ndata: y\n\nevent: delta\ndata: z\n",
    ]);
    expect(events.map((event) => [event.id, event.data])).toEqual([
      ["7", "x"],
      ["7", "y"],
    ]);
  });
});
