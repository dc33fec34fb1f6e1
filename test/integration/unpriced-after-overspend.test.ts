/**
 * A model without a price costs nothing, so no cap can refuse it: "without a price a model's cost
 * is 0: `max_cost_usd`, budgets and `cost_usd` ignore it" (configuration.md). A black-box probe
 * found it refused once a request, tenant or user had spent past its cap (a call whose real usage
 * was above its estimate pushed what was left below zero, and `0 <= negative` failed): a chain of a
 * paid model with a free local one behind it broke on exactly the requests that needed the
 * fallback (`price_ceiling` "estimated $0 exceeds the job's remaining max_cost_usd $0";
 * `over_budget` at both doors).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

const TIGHT = { authorization: "Bearer key-tight" };
const ACME = { authorization: "Bearer key-acme" };
/** "Hi" is estimated at 11 prompt tokens; the paid model reports 100 in and 100 out: $0.30. */
const OVERSPENT = {
  kind: "ok" as const,
  content: "paid",
  usage: { prompt_tokens: 100, completion_tokens: 100 },
};
const ask = { messages: [{ role: "user", content: "Hi" }], max_tokens: 1 };
/** Budget leases end within 250 ms and settlements are batched: the overspend is in Redis after. */
const spentInRedis = () => new Promise((resolve) => setTimeout(resolve, 1_000));

describe("a model without a price after a cap was overspent", () => {
  let fake: FakeOpenAI;
  let stack: Stack;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { FAKE_KEY: "sk-fake", TIGHT_KEYS: "key-tight", ACME_KEYS: "key-acme" },
      config: {
        providers: { fake: { type: "openai", base_url: fake.url, api_key_env: "FAKE_KEY" } },
        models: {
          paid: { provider: "fake", name: "up-paid", price: { input_per_mtok: 1000, output_per_mtok: 2000 } },
          free: { provider: "fake", name: "up-free" },
        },
        routes: { default: { chain: [{ model: "paid" }, { model: "free" }] } },
        tenants: {
          tight: { api_keys_env: "TIGHT_KEYS", budget: { daily_usd: 0.02 } },
          acme: { api_keys_env: "ACME_KEYS", budget: { daily_usd: 100 }, user_budget: { daily_usd: 0.1 } },
        },
      },
    });
    fake.setDefault("up-free", { kind: "ok", content: "free" });
  });
  afterAll(async () => {
    await stack?.close();
    await fake?.close();
  });

  it("a job past its max_cost_usd still falls back to it", async () => {
    // The paid call is charged $0.30 though its answer is not used (a content filter).
    fake.script("up-paid", { ...OVERSPENT, finishReason: "content_filter" });
    const created = await stack.request("POST", "/v1/jobs", {
      body: { models: ["paid", "free"], max_cost_usd: 0.02, request: ask },
      headers: ACME,
    });
    expect(created.status).toBe(202);
    const job = (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, { headers: ACME })).body;
    expect(job.attempts.map((a: { model: string; outcome: string }) => `${a.model}:${a.outcome}`)).toEqual([
      "paid:error",
      "free:success",
    ]);
    expect(job).toMatchObject({ status: "succeeded", model: "free" });
    expect(job.cost_usd).toBeCloseTo(0.3, 6);
  });

  it("a tenant past its budget still gets it, at both doors", async () => {
    fake.script("up-paid", OVERSPENT);
    const first = await stack.request("POST", "/v1/chat/completions", {
      body: { model: "paid", ...ask },
      headers: TIGHT,
    });
    expect(first.status).toBe(200);
    await spentInRedis();
    const answer = await stack.request("POST", "/v1/chat/completions", {
      body: { model: "default", ...ask },
      headers: TIGHT,
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cascade-model")).toBe("free");
    expect(answer.headers.get("x-cascade-fallbacks")).toBe("paid:over_budget");
    const created = await stack.request("POST", "/v1/jobs", { body: { request: ask }, headers: TIGHT });
    const job = (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, { headers: TIGHT })).body;
    expect(job).toMatchObject({ status: "succeeded", model: "free" });
    expect(job.attempts[0]).toMatchObject({ model: "paid", outcome: "skipped", reason: "over_budget" });
  });

  it("a user past their budget still gets it", async () => {
    fake.script("up-paid", OVERSPENT);
    const first = await stack.request("POST", "/v1/chat/completions", {
      body: { model: "paid", user: "u9", ...ask },
      headers: ACME,
    });
    expect(first.status).toBe(200);
    await spentInRedis();
    const answer = await stack.request("POST", "/v1/chat/completions", {
      body: { model: "free", user: "u9", ...ask },
      headers: ACME,
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cascade-model")).toBe("free");
  });
});
