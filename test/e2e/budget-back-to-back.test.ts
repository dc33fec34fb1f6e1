/**
 * Budgets are reserved atomically and settled to real cost (contract, Costs) — for calls that
 * follow each other closely too. A call reserves its estimate; once answered, its reservation is
 * corrected to what it cost. An audit found the correction written up to 100 ms after the answer
 * (with a batch of others), so a client's next call, sent as soon as it had its answer, was
 * admitted against a stale spend: refused though the tenant had spent a tenth of its budget, or
 * let through past it when a call cost more than its estimate.
 *
 * Prices: $1000 per million tokens, i.e. $0.001 a token; PROMPT is estimated at 20 tokens, so a
 * call with max_tokens 100 reserves (20 + 100) × $0.001 = $0.12.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ResilienceStack, startResilienceStack } from "./resilience-helpers.js";

const PROMPT = "Forty characters of prompt, exactly here";
const CHEAP = "budget-cheap-key-1";
const DEAR = "budget-dear-key-1";

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "budgetb2b",
    config: (url: string) => ({
      providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
      models: {
        cheap: { provider: "p", name: "up-cheap", price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
        dear: { provider: "p", name: "up-dear", price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
      },
      routes: { default: { chain: [{ model: "cheap" }] } },
      tenants: {
        cheap: { api_keys_env: "CHEAP_KEYS", budget: { daily_usd: 0.3 } },
        dear: { api_keys_env: "DEAR_KEYS", budget: { daily_usd: 0.3 } },
      },
    }),
    workers: 0,
    env: { CHEAP_KEYS: CHEAP, DEAR_KEYS: DEAR },
  });
});

afterAll(async () => {
  await stack?.close();
});

const call = (model: string, key: string) =>
  stack.request(
    "POST",
    "/v1/chat/completions",
    { model, max_tokens: 100, messages: [{ role: "user", content: PROMPT }] },
    key,
  );

describe("gateway calls sent back to back against a tenant's budget", () => {
  it("are admitted against what the ones before cost, not their estimates", async () => {
    // Each costs (20 + 1) × $0.001 = $0.021 of its $0.12 estimate.
    stack.fake.setDefault("up-cheap", {
      kind: "ok",
      content: "ok",
      usage: { prompt_tokens: 20, completion_tokens: 1 },
    });
    const statuses: number[] = [];
    for (let index = 0; index < 10; index++) statuses.push((await call("cheap", CHEAP)).status);
    // The 10th would make 9 × 0.021 + 0.12 = 0.309 > 0.3; every one before it fits.
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 429]);
  });

  it("are refused once a call cost more than its estimate took the budget", async () => {
    // (20 + 300) × $0.001 = $0.32: more than the $0.3 budget, which its $0.12 estimate fitted.
    stack.fake.setDefault("up-dear", {
      kind: "ok",
      content: "ok",
      usage: { prompt_tokens: 20, completion_tokens: 300 },
    });
    const first = await call("dear", DEAR);
    expect(first.status).toBe(200);
    const second = await call("dear", DEAR);
    expect(second.status).toBe(429);
    expect(second.body.error).toMatchObject({ type: "insufficient_quota", code: "over_budget" });
  });
});
