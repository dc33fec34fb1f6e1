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

/** Writes `request` as given and reads until the server closes the connection. */
function exchange(url: string, request: string): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
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
      resolve({ status: Number(head.split(" ")[1]), head, body });
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
    expect(answer.body.error).toMatchObject({ type: "invalid_request_error", code: null, param: null });
    expect(answer.body.error?.message).toMatch(message);
  };

  it("an HTTP/1.1 request with no Host header is a 400 in the error shape, on any route", async () => {
    for (const path of ["/healthz", "/v1/jobs/job_none", "/nowhere"]) {
      const answer = await exchange(stack.url, `GET ${path} HTTP/1.1\r\nconnection: close\r\n\r\n`);
      expectShape(answer, 400, /Host header/);
    }
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
