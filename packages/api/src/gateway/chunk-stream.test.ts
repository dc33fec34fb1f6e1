import { createServer, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ChunkStream, MAX_UNREAD_BYTES } from "./chunk-stream.js";

/**
 * A streaming caller that stops reading: chunks pile up in the API's buffer until ChunkStream
 * gives the caller up (destroys the response, whose close aborts the upstream call). Real sockets:
 * the caller's is paused, so the kernel's buffers fill first, then Node's.
 */
describe("ChunkStream and a caller that does not read", () => {
  let cleanup: Array<() => void> = [];
  afterEach(() => {
    for (const step of cleanup) step();
    cleanup = [];
  });

  /** A response to a caller whose socket never reads. */
  async function unreadResponse(): Promise<ServerResponse> {
    const server = createServer();
    const responded = new Promise<ServerResponse>((resolve) =>
      server.on("request", (_request, response) => resolve(response)),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const { port } = server.address() as { port: number };
    const caller: Socket = connect(port, "127.0.0.1", () => {
      caller.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      caller.pause();
    });
    caller.on("error", () => {});
    cleanup.push(() => {
      caller.destroy();
      server.close();
      server.closeAllConnections();
    });
    return responded;
  }

  it("gives the caller up once MAX_UNREAD_BYTES of chunks wait unread", async () => {
    const response = await unreadResponse();
    const stream = new ChunkStream(response, {
      id: "chatcmpl-test",
      created: 1,
      chainModels: ["m"],
      holdMs: 0,
      policy: "error",
      open: () => response.writeHead(200, { "content-type": "text/event-stream" }),
    });
    const piece = "token ".repeat(200);
    let sent = 0;
    // Far more than the kernel's buffers and the bound together; each step lets the socket write.
    while (!response.destroyed && sent < 8 * MAX_UNREAD_BYTES) {
      for (let index = 0; index < 100; index++) stream.delta(0, { content: piece });
      sent += 100 * piece.length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(response.destroyed).toBe(true);
    expect(sent).toBeLessThan(8 * MAX_UNREAD_BYTES);
  });
});
