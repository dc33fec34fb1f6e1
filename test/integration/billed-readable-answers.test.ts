/**
 * A 2xx answer not streamed that WAS read is not charged as an unreadable one (its whole
 * `max_tokens`, ADR 0013's third revision): a chat.completion without choices is charged the usage
 * it reports; a 200 whose body is an error envelope (some proxies send one) is charged nothing, as
 * the same error with a 502 is. Both were charged prompt + max_tokens when "could not be read" was
 * told by the error's reason alone (second reader of the change).
 */
import { afterAll, beforeAll, beforeEach, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

const PRICE = { input_per_mtok: 2, output_per_mtok: 8 };
const MAX_TOKENS = 300;
const MESSAGES = [{ role: "user", content: "Hello there" }];

let openai: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  openai = await startFakeOpenAI({ apiKey: "sk-up" });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up" },
    config: {
      providers: {
        oa: { type: "openai", base_url: openai.url, api_key_env: "UP_KEY", breaker: { min_requests: 1000 } },
      },
      models: {
        "m-oa": { provider: "oa", name: "up-oa", price: PRICE },
        free: { provider: "oa", name: "up-free", price: { input_per_mtok: 0, output_per_mtok: 0 } },
      },
      routes: { "r-oa": { chain: [{ model: "m-oa" }, { model: "free" }] } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await openai?.close();
});
beforeEach(() => {
  openai.reset();
  openai.setDefault("up-free", { kind: "ok", content: "From the free model." });
});

async function jobCost(): Promise<{ cost: number; attempts: string[] }> {
  const created = await stack.request("POST", "/v1/jobs", {
    body: { route: "r-oa", request: { messages: MESSAGES, max_tokens: MAX_TOKENS } },
  });
  const job = (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`)).body;
  return {
    cost: job.cost_usd,
    attempts: job.attempts.map((a: { outcome: string; reason?: string }) => `${a.outcome}:${a.reason ?? ""}`),
  };
}

it("a 200 chat.completion with no choices is charged the usage it reports", async () => {
  openai.script("up-oa", {
    kind: "status",
    status: 200,
    body: {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1,
      model: "up-oa",
      choices: [],
      usage: { prompt_tokens: 9, completion_tokens: 0, total_tokens: 9 },
    },
  });
  const { cost, attempts } = await jobCost();
  expect(attempts).toEqual(["error:invalid_response", "success:"]);
  // The provider said what it billed: 9 prompt tokens, nothing generated.
  expect(cost).toBeCloseTo((9 * 2) / 1e6, 12);
});

it("a 200 whose body is an error envelope is charged nothing, as the same error with a 502", async () => {
  openai.script("up-oa", {
    kind: "status",
    status: 200,
    body: { error: { message: "upstream provider unavailable", type: "server_error", code: 502 } },
  });
  const { cost, attempts } = await jobCost();
  expect(attempts).toEqual(["error:invalid_response", "success:"]);
  // Previously $0, like the same error with status 502: nothing was generated.
  expect(cost).toBe(0);
});

it("a provider's own timeout answer (HTTP 408) is charged nothing, as any HTTP error", async () => {
  // It was taken for Cascade's own timeout (an abandoned call) and charged prompt + max_tokens.
  openai.script("up-oa", { kind: "status", status: 408, body: { error: { message: "Request timed out" } } });
  const { cost, attempts } = await jobCost();
  expect(attempts).toEqual(["error:timeout", "success:"]);
  expect(cost).toBe(0);
});

it("a 200 that parses but is not a chat.completion is charged the usage it carries, else as unread", async () => {
  openai.script("up-oa", {
    kind: "status",
    status: 200,
    body: {
      id: "x",
      object: "chat.completion",
      choices: [{ index: "zero" }],
      usage: { prompt_tokens: 40, completion_tokens: 7 },
    },
  });
  const withUsage = await jobCost();
  expect(withUsage.attempts).toEqual(["error:invalid_response", "success:"]);
  expect(withUsage.cost).toBeCloseTo((40 * 2 + 7 * 8) / 1e6, 12);
  openai.script("up-oa", {
    kind: "status",
    status: 200,
    body: { id: "x", object: "chat.completion", choices: [{ index: "zero" }] },
  });
  const without = await jobCost();
  expect(without.attempts).toEqual(["error:invalid_response", "success:"]);
  // Generated and billed whole, its usage unread: the prompt estimate + max_tokens.
  expect(without.cost).toBeGreaterThan((MAX_TOKENS * 8) / 1e6);
});
