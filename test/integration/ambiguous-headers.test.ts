/**
 * Headers a request may carry once, sent twice, and a JSON body declared in another charset: each
 * is refused in the contract's error shape naming the header, not read one way silently (a
 * black-box audit: two Authorization lines authenticated as the first; two Idempotency-Key lines
 * made the key "k1, k2"; `charset=utf-16` was read as UTF-8).
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" }, b: { api_keys_env: "B_KEYS" } },
};
const body = JSON.stringify({ request: { messages: [{ role: "user", content: "hi" }], max_tokens: 5 } });

/** One HTTP/1.1 request with its header lines exactly as given (fetch would join repeated ones). */
function rawRequest(
  url: string,
  method: string,
  path: string,
  headers: Array<[string, string]>,
  payload = "",
): Promise<{ status: number; body: { error?: { type: string; message: string; param: string | null } } }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const [head = "", rest = ""] = received.split("\r\n\r\n");
      const status = Number(head.split(" ")[1]);
      const start = rest.indexOf("{");
      const end = rest.lastIndexOf("}");
      resolve({ status, body: start >= 0 ? JSON.parse(rest.slice(start, end + 1)) : {} });
    });
    const lines = [
      `${method} ${path} HTTP/1.1`,
      `host: ${hostname}:${port}`,
      "connection: close",
      ...headers.map(([name, value]) => `${name}: ${value}`),
      ...(payload ? [`content-length: ${Buffer.byteLength(payload)}`] : []),
    ];
    socket.write(`${lines.join("\r\n")}\r\n\r\n${payload}`);
  });
}

describe("ambiguous headers", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      withoutWorker: true,
      env: { A_KEYS: "key-a", B_KEYS: "key-b" },
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("two Authorization lines are a 401 naming the header, whichever key comes first", async () => {
    for (const keys of [
      ["key-a", "key-b"],
      ["key-b", "key-a"],
      ["key-a", "key-a"],
    ]) {
      const answer = await rawRequest(stack.url, "GET", "/v1/jobs/job_none", [
        ["authorization", `Bearer ${keys[0]}`],
        ["Authorization", `Bearer ${keys[1]}`],
      ]);
      expect(answer.status).toBe(401);
      expect(answer.body.error?.type).toBe("authentication_error");
      expect(answer.body.error?.message).toMatch(/one Authorization header/);
    }
    // One line still authenticates.
    const one = await rawRequest(stack.url, "GET", "/v1/jobs/job_none", [["authorization", "Bearer key-a"]]);
    expect(one.status).toBe(404);
  });

  it("two Idempotency-Key lines are a 400 naming the header; one key with a comma is still a key", async () => {
    const twice = await rawRequest(
      stack.url,
      "POST",
      "/v1/jobs",
      [
        ["authorization", "Bearer key-a"],
        ["content-type", "application/json"],
        ["idempotency-key", "k1"],
        ["Idempotency-Key", "k2"],
      ],
      body,
    );
    expect(twice.status).toBe(400);
    expect(twice.body.error?.param).toBe("Idempotency-Key");
    const empty = await rawRequest(
      stack.url,
      "POST",
      "/v1/jobs",
      [
        ["authorization", "Bearer key-a"],
        ["content-type", "application/json"],
        ["idempotency-key", ""],
      ],
      body,
    );
    expect(empty.status).toBe(400);
    expect(empty.body.error?.param).toBe("Idempotency-Key");
    const comma = await stack.request("POST", "/v1/jobs", {
      body,
      headers: { authorization: "Bearer key-a", "idempotency-key": `k1, k2 ${Date.now()}` },
    });
    expect(comma.status).toBe(202);
  });

  it("a JSON body declared in a charset other than UTF-8 is a 415 naming content-type", async () => {
    const accented = body.replace('"hi"', '"héllo"');
    for (const [type, sent] of [
      ["application/json; charset=utf-16", body],
      ["application/json;charset=ISO-8859-1", accented],
    ] as const) {
      const answer = await stack.request("POST", "/v1/jobs", {
        body: sent,
        headers: { authorization: "Bearer key-a", "content-type": type },
      });
      expect(answer.status).toBe(415);
      expect(answer.body.error?.param).toBe("content-type");
    }
    for (const type of [
      "application/json; charset=utf-8",
      "application/json; charset=UTF8",
      'application/json; charset="utf-8"',
      // ASCII reads the same in any ASCII-compatible charset: a client that labels it so still works.
      "application/json; charset=ISO-8859-1",
    ]) {
      const answer = await stack.request("POST", "/v1/jobs", {
        body,
        headers: { authorization: "Bearer key-a", "content-type": type },
      });
      expect(answer.status).toBe(202);
    }
  });
});
