/**
 * Proof: a budget lease loses no overrun (issue "Trust", item 2). A worker holding a budget lease
 * admits calls from it by their estimates; when the real cost runs far above the estimate (CJK
 * text, code, a request without max_tokens), the difference must still reach the spend key when
 * the lease ends, even when it is more than the lease held.
 *
 * Prices: $1000 per million tokens, i.e. $0.001 a token. Each request is estimated at 20 prompt
 * tokens (40 characters / 4 + 10) + max_tokens 10 = 30 tokens = $0.03; the fake bills 300 tokens =
 * $0.30, ten times the estimate. The budget is large, so admit.lua hands out leases (50 calls'
 * worth of estimate, $1.50), and each burst of jobs overruns what its lease held. Bursts are
 * separated by idle gaps longer than a lease (250 ms), so every lease ends and is given back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keysMatching } from "../support/redis-clients.js";
import type { Json } from "./helpers.js";
import { figure, type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const TENANT_KEY = "lease-overrun-key-1";
const PROMPT = "Forty characters of prompt, exactly here"; // 40 characters
const REAL_USD = 0.3;

const config = (url: string) => ({
  providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
  models: { a: { provider: "p", name: "up-a", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
  routes: { default: { chain: [{ model: "a" }] } },
  tenants: {
    acme: {
      api_keys_env: "ACME_KEYS",
      budget: { daily_usd: 1000, monthly_usd: 10000 },
      user_budget: { daily_usd: 1000 },
    },
  },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "roverrun",
    config,
    workers: 2,
    concurrency: 10,
    env: { ACME_KEYS: TENANT_KEY },
  });
  stack.fake.setDefault("up-a", {
    kind: "ok",
    delayMs: 20,
    usage: { prompt_tokens: 20, completion_tokens: 280 },
  });
});

afterAll(async () => {
  await stack?.close();
});

async function spendOf(pattern: string): Promise<number> {
  const keys = await keysMatching(stack.redis, `${stack.tag}:spend:${pattern}`);
  let total = 0;
  for (const key of keys) total += Number((await stack.redis.get(key)) ?? 0);
  return total;
}

describe("budget leases under overruns", () => {
  it("the spend keys equal GET /v1/usage and the jobs' costs to the cent when calls cost 10x their estimate", async () => {
    const jobs: Json[] = [];
    for (let burst = 0; burst < 4; burst += 1) {
      const ids = await Promise.all(
        Array.from({ length: 12 }, () =>
          stack.submit(
            { request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 10 }, user: "u1" },
            TENANT_KEY,
          ),
        ),
      );
      jobs.push(...(await stack.waitAll(ids, 30_000, TENANT_KEY)));
      await sleep(600); // longer than a lease: every lease held now ends and is given back
    }
    await sleep(600); // the last settlements and lease give-backs are batched
    const fromJobs = jobs.reduce((total: number, job: Json) => total + job.cost_usd, 0);
    const usage = await stack.request("GET", "/v1/usage", undefined, TENANT_KEY);
    const tenantDay = await spendOf("tenant:acme:d:*");
    const tenantMonth = await spendOf("tenant:acme:m:*");
    const userDay = await spendOf("user:acme:u1:d:*");
    figure("lease overrun", {
      jobs: jobs.length,
      from_jobs_usd: fromJobs,
      usage_usd: usage.body.cost_usd,
      tenant_day_usd: tenantDay,
      tenant_month_usd: tenantMonth,
      user_day_usd: userDay,
    });
    expect(jobs.every((job: Json) => job.status === "succeeded")).toBe(true);
    for (const job of jobs) expect(job.cost_usd).toBeCloseTo(REAL_USD, 9);
    expect(usage.status).toBe(200);
    expect(usage.body.cost_usd).toBeCloseTo(fromJobs, 6);
    expect(tenantDay).toBeCloseTo(fromJobs, 6);
    expect(tenantMonth).toBeCloseTo(fromJobs, 6);
    expect(userDay).toBeCloseTo(fromJobs, 6);
  }, 120_000);
});
