/**
 * A 502 `all_models_failed` whose hops all failed for reasons a retry of the same request cannot
 * change (the upstream refused a parameter, or the key; content filtered) carries
 * `x-should-retry: false`: OpenAI's SDKs retry a 502 twice by default, and ran the whole chain
 * again, twice, for the same refusal (black-box audit with the `openai` SDK). A 502 that a
 * provider's outage made (5xx, timeouts, cut connections) keeps the SDK's retries.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

const KEY = "sk-should-retry";
let fake: FakeOpenAI;
let stack: Stack;

const unsupported = {
  kind: "status" as const,
  status: 400,
  body: {
    error: {
      message: "Unsupported value: 'temperature' does not support 0.2 with this model.",
      type: "invalid_request_error",
      param: "temperature",
      code: "unsupported_value",
    },
  },
};

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  const model = (name: string) => ({
    provider: "up",
    name,
    price: { input_per_mtok: 1, output_per_mtok: 2 },
  });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", GW_KEYS: KEY },
    withoutWorker: true,
    config: {
      providers: { up: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" } },
      models: { a: model("up-a"), b: model("up-b") },
      routes: { default: { chain: [{ model: "a" }, { model: "b" }] } },
      tenants: { acme: { api_keys_env: "GW_KEYS" } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});

const ask = () =>
  new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: KEY, maxRetries: 2 }).chat.completions
    .create({ model: "default", messages: [{ role: "user", content: "Hi" }], temperature: 0.2 })
    .then(
      () => undefined,
      (error: InstanceType<typeof OpenAI.APIError>) => error,
    );

describe("x-should-retry on a 502 every hop of which failed", () => {
  it("is false when every hop refused the request itself: the SDK asks once", async () => {
    fake.script("up-a", unsupported);
    fake.script("up-b", unsupported);
    const calls = fake.calls.length;
    const error = await ask();
    expect(error?.status).toBe(502);
    expect(error?.headers?.get("x-should-retry")).toBe("false");
    // One request, two upstream calls (a, then b): no retry ran the chain again.
    expect(fake.calls.length - calls).toBe(2);
  });

  it("is left to the SDK when an outage failed a hop: it retries", async () => {
    fake.script("up-a", unsupported, unsupported, unsupported);
    fake.script("up-b", { kind: "server_error" }, { kind: "server_error" }, { kind: "server_error" });
    const calls = fake.calls.length;
    const error = await ask();
    expect(error?.status).toBe(502);
    expect(error?.headers?.get("x-should-retry")).toBeNull();
    expect(fake.calls.length - calls).toBe(6);
  }, 20_000);
});
