/**
 * A body that does not come cannot hold a connection (and what was read of it) for long. An audit
 * held 300 connections of one tenant (its open-request limit 5) with 1 MB bodies sent but for
 * their last bytes, then one byte every 5 s: nothing answered them for the hour of the request
 * timeout, and the API grew by ~150 MB. And anyone without a key held 500 connections to public
 * routes (`GET /healthz` declaring a 100 MB body, trickled): answered 200 and kept alive while the
 * body went on being read. Now a body must arrive at a minimum rate after a grace period (else its
 * request and connection are ended), and a public route's answer to a request that declares a
 * body closes the connection instead of reading the rest.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

let stack: Stack;
beforeAll(async () => {
  stack = await startTenantsApi(inject("redisUrl"), { acme: "acme-key" });
});
afterAll(() => stack?.close());

/** Opens a raw connection, sends `head` and `body`, and resolves with what came back by the time the server closed it (or `waitMs` passed). */
function hold(head: string, body: string, waitMs: number) {
  const { hostname, port } = new URL(stack.url);
  return new Promise<{ text: string; closedAfterMs: number | undefined }>((resolve) => {
    const started = Date.now();
    let text = "";
    const socket: Socket = connect(Number(port), hostname, () => {
      socket.write(head);
      socket.write(body);
    });
    // One byte every second: a body that never completes.
    const trickle = setInterval(() => socket.write(" "), 1000);
    const done = (closedAfterMs: number | undefined) => {
      clearInterval(trickle);
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closedAfterMs });
    };
    const timer = setTimeout(() => done(undefined), waitMs);
    socket.on("data", (chunk) => {
      text += chunk;
    });
    socket.on("close", () => done(Date.now() - started));
    socket.on("error", () => {});
  });
}

describe("a body that does not come", () => {
  it("has its connection closed once it falls behind the minimum rate, not after the hour", async () => {
    const body = '{"request": {"messages": [';
    const head =
      "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-key\r\n" +
      "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    const { closedAfterMs } = await hold(head, body, 30_000);
    expect(closedAfterMs).toBeDefined();
    expect(closedAfterMs).toBeLessThan(20_000);
  }, 40_000);

  it("on a public route, gets its answer with the connection closed instead of being read", async () => {
    const head = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    const { text, closedAfterMs } = await hold(head, "x".repeat(10), 10_000);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(closedAfterMs).toBeDefined();
    expect(closedAfterMs).toBeLessThan(3_000);
  });

  it("behind an answer already streaming (a file the client does not read), ends the connection and nothing else", async () => {
    const head = "GET /docs/static/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
    const { closedAfterMs } = await hold(head, "", 20_000);
    expect(closedAfterMs).toBeDefined();
    // The API is still there.
    expect((await fetch(`${stack.url}/healthz`)).status).toBe(200);
  }, 30_000);

  it("is not cut while it arrives steadily above the rate, however long it takes", async () => {
    const body = JSON.stringify({
      request: { messages: [{ role: "user", content: "x".repeat(400_000) }] },
    });
    const { hostname, port } = new URL(stack.url);
    const status = await new Promise<string>((resolve, reject) => {
      let text = "";
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-key\r\n" +
            `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
        );
        // 8 KiB every 250 ms: 32 KiB/s, twice the minimum; ~12.5 s in all, past the grace.
        let offset = 0;
        const step = setInterval(() => {
          socket.write(body.slice(offset, offset + 8192));
          offset += 8192;
          if (offset >= body.length) clearInterval(step);
        }, 250);
      });
      socket.on("data", (chunk) => {
        text += chunk;
      });
      socket.on("close", () => resolve(text.slice(0, 12)));
      socket.on("error", reject);
    });
    expect(status).toBe("HTTP/1.1 202");
  }, 30_000);
});
