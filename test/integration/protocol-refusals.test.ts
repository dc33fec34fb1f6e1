/**
 * Requests Node's HTTP server refuses before Fastify sees them are answered in the contract's
 * error shape too, as every framework error is (a black-box probe: an HTTP/1.1 request with no
 * Host got a 400 with an empty body, an unknown `Expect` a bare 417, and CONNECT a closed socket
 * with no answer at all).
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" } },
};

interface Answer {
  status: number;
  head: string;
  body: { error?: { type: string; message: string; code: unknown; param: unknown } };
}

/**
 * Writes `request` as given and reads until the server closes the connection. `halfOpen`: the
 * client never closes its side, nor stops, as a client holding a connection would.
 */
function exchange(url: string, request: string, halfOpen = false): Promise<Answer & { raw: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: halfOpen });
    let received = "";
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer: ${JSON.stringify(received)}`)));
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    socket.on("error", reject);
    socket.on("close", () => {
      const at = received.indexOf("\r\n\r\n");
      const head = at >= 0 ? received.slice(0, at) : received;
      const rest = at >= 0 ? received.slice(at + 4) : "";
      let body: Answer["body"] = {};
      try {
        body = JSON.parse(rest);
      } catch {
        // not JSON: the assertion on `body` says so
      }
      resolve({ status: Number(head.split(" ")[1]), head, body, raw: received });
    });
    socket.write(request);
  });
}

describe("requests refused below the framework", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      withoutWorker: true,
      env: { A_KEYS: "key-a" },
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const expectShape = (answer: Answer, status: number, message: RegExp) => {
    expect(answer.status, answer.head).toBe(status);
    expect(answer.head).toMatch(/content-type: application\/json/i);
    expect(answer.body.error).toMatchObject({ type: "invalid_request_error", code: null });
    expect(answer.body.error?.message).toMatch(message);
  };

  it("an HTTP/1.1 request with no Host header is a 400 in the error shape, on any route", async () => {
    for (const path of ["/healthz", "/v1/jobs/job_none", "/nowhere"]) {
      const answer = await exchange(stack.url, `GET ${path} HTTP/1.1\r\nconnection: close\r\n\r\n`);
      expectShape(answer, 400, /Host header/);
    }
    // Two Host lines (Node kept the first silently).
    const twice = await exchange(
      stack.url,
      "GET /healthz HTTP/1.1\r\nhost: localhost\r\nhost: evil.example\r\nconnection: close\r\n\r\n",
    );
    expectShape(twice, 400, /one Host header/);
    // HTTP/1.0 needs none.
    const old = await exchange(stack.url, "GET /healthz HTTP/1.0\r\n\r\n");
    expect(old.status).toBe(200);
  });

  it("an Expect other than 100-continue is a 417 in the error shape", async () => {
    const answer = await exchange(
      stack.url,
      "GET /healthz HTTP/1.1\r\nhost: localhost\r\nexpect: foo\r\nconnection: close\r\n\r\n",
    );
    expectShape(answer, 417, /Expect/);
  });

  it("an Expect pipelined behind another request is answered in its turn, then the connection closes", async () => {
    const get = "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
    const answer = await exchange(
      stack.url,
      `${get}GET /healthz HTTP/1.1\r\nhost: localhost\r\nexpect: foo\r\n\r\n`,
    );
    expect(answer.status).toBe(200);
    const second = answer.raw.slice(answer.raw.indexOf("HTTP/1.1", 5));
    expect(second).toMatch(/^HTTP\/1\.1 417 /);
    expect(second).toMatch(/"type":"invalid_request_error"/);
  });

  it("a client that keeps a refused CONNECT open (and keeps sending) is cut off within seconds", async () => {
    // Handed over by Node, the socket had none of the server's timeouts: it stayed open for ever.
    const { hostname, port } = new URL(stack.url);
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    const started = Date.now();
    const cutOff = new Promise<number>((resolve) => {
      socket.on("error", () => resolve(Date.now() - started));
      socket.on("close", () => resolve(Date.now() - started));
    });
    socket.write("CONNECT 127.0.0.1:6379 HTTP/1.1\r\nhost: 127.0.0.1:6379\r\n\r\n");
    // Writes go on until the server has let go (a reset answers them then).
    const writing = setInterval(() => {
      if (!socket.destroyed) socket.write("PING\r\n");
    }, 100);
    try {
      const afterMs = await Promise.race([
        cutOff,
        new Promise<number>((resolve) => setTimeout(resolve, 5_000, -1)),
      ]);
      expect(afterMs).toBeGreaterThan(0);
      expect(afterMs).toBeLessThan(3_000);
    } finally {
      clearInterval(writing);
      socket.destroy();
    }
    expect(received).toMatch(/^HTTP\/1\.1 405 /);
    expect(received).toMatch(/allow: GET, HEAD, POST, DELETE/i);
  });

  it("CONNECT is a 405 in the error shape, not a closed socket", async () => {
    const answer = await exchange(
      stack.url,
      "CONNECT 127.0.0.1:6379 HTTP/1.1\r\nhost: 127.0.0.1:6379\r\n\r\n",
    );
    expect(answer.status, answer.head).toBe(405);
    expect(answer.body.error).toMatchObject({ type: "method_not_allowed_error", code: null, param: null });
    expect(answer.body.error?.message).toMatch(/CONNECT/);
  });
});
