/**
 * A request refused for its key (401, or 403 on an admin route) is answered before its body is
 * read. The connection must then close: otherwise Node reads and discards the rest of the
 * declared body to reuse the socket, and a client with no key can hold a connection (and its file
 * descriptor) open for the whole request timeout (an hour) by sending a byte now and then.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

/** Sends the head and the first byte of a 100 kB body; resolves with what came back and whether the server closed. */
function partialPost(url: string, path: string, authorization?: string) {
  const { hostname, port } = new URL(url);
  return new Promise<{ head: string; text: string; closed: boolean; socket: Socket }>((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = "";
    let closed = false;
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    socket.on("close", () => {
      closed = true;
    });
    socket.on("error", reject);
    socket.on("connect", () => {
      const auth = authorization ? `Authorization: ${authorization}\r\n` : "";
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
          `Content-Length: 100000\r\n${auth}\r\n{`,
      );
      // Keep the body trickling, as a slow client would, while the server decides.
      const drip = setInterval(() => socket.writable && socket.write(" "), 100);
      setTimeout(() => {
        clearInterval(drip);
        resolve({ head: received.split("\r\n")[0] ?? "", text: received, closed, socket });
      }, 1_500);
    });
  });
}

describe("a request refused for its key, body still coming", () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startTenantsApi(inject("redisUrl"), { acme: "acme-key" });
  });
  afterAll(() => stack?.close());

  it("is answered 401 and its connection closed, not held open while the body trickles in", async () => {
    for (const authorization of [undefined, "Bearer not-a-key"]) {
      const { head, closed, socket } = await partialPost(stack.url, "/v1/jobs", authorization);
      socket.destroy();
      expect(head, String(authorization)).toBe("HTTP/1.1 401 Unauthorized");
      expect(closed, String(authorization)).toBe(true);
    }
  });

  it("is answered 403 on an admin route with a tenant's key, and closed as well", async () => {
    const { head, closed, socket } = await partialPost(
      stack.url,
      "/v1/providers/sim/breaker",
      "Bearer acme-key",
    );
    socket.destroy();
    expect(head).toBe("HTTP/1.1 403 Forbidden");
    expect(closed).toBe(true);
  });

  it("answers a path no route serves (404, or 405 with Allow) at once and closes, body still coming", async () => {
    // It read the whole declared body before answering: no answer at all while it trickled.
    const cases: Array<[string, string, string]> = [
      ["/v1/nope", "HTTP/1.1 404 Not Found", ""],
      ["/healthz", "HTTP/1.1 405 Method Not Allowed", "allow: GET"],
    ];
    for (const [path, status, header] of cases) {
      const { head, closed, socket, text } = await partialPost(stack.url, path, "Bearer acme-key");
      socket.destroy();
      expect(head, path).toBe(status);
      expect(text.toLowerCase(), path).toContain(header.toLowerCase());
      expect(text, path).toContain('"error":{"type":');
      expect(closed, path).toBe(true);
    }
  });

  it("keeps a connection whose refused request had no body, for the next request", async () => {
    const { hostname, port } = new URL(stack.url);
    const socket = connect(Number(port), hostname);
    const answers: string[] = [];
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
    });
    await new Promise((resolve) => socket.on("connect", resolve));
    socket.write(`GET /v1/jobs/job_x HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    answers.push(buffer.split("\r\n")[0] ?? "");
    socket.write(`GET /healthz HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.destroy();
    expect(answers[0]).toBe("HTTP/1.1 401 Unauthorized");
    expect(buffer).toContain('{"status":"ok"}');
  });
});
