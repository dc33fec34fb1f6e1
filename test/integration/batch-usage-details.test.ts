/**
 * A batch's `usage` sums its lines' tokens as OpenAI's does, the cached prompt tokens and the
 * reasoning tokens included (`input_tokens_details.cached_tokens`,
 * `output_tokens_details.reasoning_tokens`). They were always 0 though each output line carried
 * them (a black-box probe's find).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { batchClient, uploadBatchInput, waitForBatchStatus } from "../support/batch-client.js";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", ACME_KEYS: "acme-key" },
    config: {
      providers: { up: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" } },
      models: { m: { provider: "up", name: "up-m" } },
      routes: { default: { chain: [{ model: "m" }] } },
      tenants: { acme: { api_keys_env: "ACME_KEYS" } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});

describe("a batch's usage", () => {
  it("sums the lines' cached and reasoning tokens beside their input and output tokens", async () => {
    const usage = { prompt_tokens: 50, completion_tokens: 30, cached_tokens: 40, reasoning_tokens: 20 };
    fake.setDefault("up-m", { kind: "ok", content: "answered", usage });
    const openai = batchClient(stack);
    const lines = ["one", "two", "three"].map((id) => ({
      custom_id: id,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: id }] },
    }));
    const file = await uploadBatchInput(openai, `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`);
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await waitForBatchStatus(openai, created.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(done.usage).toEqual({
      input_tokens: 150,
      input_tokens_details: { cached_tokens: 120 },
      output_tokens: 90,
      output_tokens_details: { reasoning_tokens: 60 },
      total_tokens: 240,
    });
  });
});
