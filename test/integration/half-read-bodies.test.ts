/**
 * An error answered before the request's body was read to its end must not leave its keep-alive
 * connection stuck. An upload refused mid-body (a second file part, an unknown field) left the
 * request half-consumed: Node then neither read the rest nor closed the connection, so the next
 * request a client sent on it was never read (seen as a fuzz run that hung for its whole timeout,
 * with the server's sockets holding unread requests, and an API whose close waited for them). The
 * rest of such a body is now read and dropped, as Node does for a body nobody began to read.
 */
import { Agent, request } from "node:http";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    withoutWorker: true,
    env: { ACME_KEYS: "acme-key" },
    config: {
      providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
      models: { fast: { provider: "sim" } },
      routes: { default: { chain: [{ model: "fast" }] } },
      tenants: { acme: { api_keys_env: "ACME_KEYS" } },
    },
  });
});
afterAll(() => stack?.close());

interface Answer {
  status: number;
  connection: string | undefined;
  text: string;
}

/** One request on `agent` (one socket: the next request reuses it if it is kept alive). */
function send(agent: Agent, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<Answer>((resolve, reject) => {
    const outgoing = request(`${stack.url}${path}`, {
      method,
      agent,
      headers: {
        authorization: "Bearer acme-key",
        ...headers,
        ...(body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {}),
      },
    });
    const timer = setTimeout(
      () => outgoing.destroy(new Error(`${method} ${path}: no answer within 5 s`)),
      5000,
    );
    outgoing.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    outgoing.on("response", (incoming) => {
      let text = "";
      incoming.on("data", (chunk: Buffer) => {
        text += chunk;
      });
      incoming.on("end", () => {
        clearTimeout(timer);
        resolve({ status: incoming.statusCode ?? 0, connection: incoming.headers.connection, text });
      });
    });
    if (body !== undefined) outgoing.write(body);
    outgoing.end();
  });
}

const boundary = "halfread";
const part = (name: string, content: string, filename?: string) =>
  `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ""}\r\n` +
  `${filename ? "Content-Type: application/jsonl\r\n" : ""}\r\n${content}\r\n`;
// Large enough that the parts after the refused one are still unread when the answer goes.
const line = `${JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "fast", messages: [{ role: "user", content: "x".repeat(900) }] } })}\n`;
const bigFile = line.repeat(400);

describe("an upload refused mid-body", () => {
  const bodies: Record<string, string> = {
    "a second file part": `${part("purpose", "batch")}${part("file", bigFile, "a.jsonl")}${part("other", bigFile, "b.jsonl")}${part("file", bigFile, "c.jsonl")}--${boundary}--\r\n`,
    "an unknown field first": `${part("colour", "blue")}${part("file", bigFile, "a.jsonl")}${part("purpose", "batch")}--${boundary}--\r\n`,
  };
  for (const [name, body] of Object.entries(bodies)) {
    it(`${name}: the 400 is answered, and the client's next request on the connection too`, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const refused = await send(
          agent,
          "POST",
          "/v1/files",
          { "content-type": `multipart/form-data; boundary=${boundary}` },
          body,
        );
        expect(refused.status).toBe(400);
        const next = await send(agent, "GET", "/v1/files", {});
        expect(next.status).toBe(200);
      } finally {
        agent.destroy();
      }
    });
  }

  it("an upload read to its end keeps its connection alive", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const body = `${part("purpose", "batch")}${part("file", line, "ok.jsonl")}--${boundary}--\r\n`;
      const stored = await send(
        agent,
        "POST",
        "/v1/files",
        { "content-type": `multipart/form-data; boundary=${boundary}` },
        body,
      );
      expect(stored.status).toBe(200);
      expect(stored.connection).toBe("keep-alive");
      expect((await send(agent, "GET", "/v1/files", {})).status).toBe(200);
    } finally {
      agent.destroy();
    }
  });
});
