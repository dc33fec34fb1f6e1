/**
 * An OpenAI-compatible server that answers without `usage` (no `usage` object in a
 * chat.completion, no usage chunk in a stream although `stream_options.include_usage` asked for
 * it: self-hosted servers and proxies do both) still did the work and bills it. The call was
 * charged nothing, so budgets, `max_cost_usd`, `x-cascade-cost-usd` and GET /v1/usage never
 * counted it: a tenant's budget did not stop a single such request. It is now charged as ADR
 * 0013 charges a call whose usage is unknown: the prompt estimate plus the answer's characters
 * / 4, and the answer's `usage` shows that charge rather than zeros. Found by black-box audits of
 * the gateway.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const ANSWER = "no usage here";
let server: Server;
let stack: Stack;

/** Answers every call with ANSWER and no usage at all, streamed or not. */
function startServer(): Promise<string> {
  server = createServer((request, response) => {
    let raw = "";
    request.on("data", (piece) => {
      raw += piece;
    });
    request.on("end", () => {
      const body = JSON.parse(raw) as { model: string; stream?: boolean };
      const base = { id: "chatcmpl-nousage", created: 1, model: body.model, system_fingerprint: null };
      if (body.stream !== true) {
        response.writeHead(200, { "content-type": "application/json" });
        const message = { role: "assistant", content: ANSWER };
        response.end(
          JSON.stringify({
            ...base,
            object: "chat.completion",
            choices: [{ index: 0, message, logprobs: null, finish_reason: "stop" }],
          }),
        );
        return;
      }
      response.writeHead(200, { "content-type": "text/event-stream" });
      const chunk = (delta: object, finish: string | null) =>
        `data: ${JSON.stringify({
          ...base,
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        })}\n\n`;
      response.end(
        `${chunk({ role: "assistant", content: "" }, null)}${chunk({ content: ANSWER }, null)}${chunk({}, "stop")}data: [DONE]\n\n`,
      );
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`),
    ),
  );
}

beforeAll(async () => {
  const url = await startServer();
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", NU_KEYS: "sk-nousage" },
    withoutWorker: true,
    config: {
      providers: { up: { type: "openai", base_url: url, api_key_env: "UP_KEY" } },
      models: {
        m: { provider: "up", name: "self-hosted", price: { input_per_mtok: 1, output_per_mtok: 2 } },
      },
      routes: { default: { chain: [{ model: "m" }] } },
      tenants: { acme: { api_keys_env: "NU_KEYS" } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await new Promise((resolve) => server?.close(resolve));
});

const spent = async (): Promise<number> => {
  const response = await fetch(`${stack.url}/v1/usage`, { headers: { authorization: "Bearer sk-nousage" } });
  return ((await response.json()) as { cost_usd: number }).cost_usd;
};

// The prompt estimate (ceil(6 characters / 4) + 10 per message = 12 tokens at $1/Mtok) and the
// answer's 13 characters (4 tokens at $2/Mtok).
const ESTIMATED_USD = 12e-6 + 4 * 2e-6;

describe("an answer that reports no usage", () => {
  it.each([false, true])("is charged its estimate (stream: %s)", async (stream) => {
    const before = await spent();
    const response = await fetch(`${stack.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-nousage" },
      body: JSON.stringify({
        model: "m",
        messages: [{ role: "user", content: "Say hi" }],
        stream,
        ...(stream ? { stream_options: { include_usage: true } } : {}),
      }),
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(ANSWER);
    // The usage the caller is shown is what the call was charged (the estimate), not zeros.
    const usage = stream
      ? text
          .split("\n\n")
          .filter((event) => event.startsWith("data: {"))
          .map((event) => JSON.parse(event.slice("data: ".length)))
          .find((chunk) => chunk.usage)?.usage
      : JSON.parse(text).usage;
    expect(usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 });
    if (!stream) expect(Number(response.headers.get("x-cascade-cost-usd"))).toBeCloseTo(ESTIMATED_USD, 12);
    await expect.poll(async () => (await spent()) - before).toBeCloseTo(ESTIMATED_USD, 12);
  });
});
