/**
 * Proof: spend budgets hold across worker processes (contract, Semantics → Costs: "Budgets are
 * reserved atomically and settled to real cost"). 200 concurrent jobs whose real cost fits ~40%
 * of them into the tenant's daily budget: final spend ≤ budget, the rest are skipped `over_budget`
 * (and fail `all_models_failed`, no other hop). The same for each end user's budget (`user`).
 *
 * Prices: $1000 per million tokens in and out, i.e. $0.001 a token. Each request is estimated at
 * 20 prompt tokens (40 characters / 4 + 10) + max_tokens 80 = 100 tokens = $0.10; the fake reports
 * real usage 20 + 60 = 80 tokens = $0.08.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keysMatching } from "../support/redis-clients.js";
import type { Json } from "./helpers.js";
import { figure, type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const ACME_KEY = "acme-budget-key-1";
const BETA_KEY = "beta-budget-key-1";
const TENANT_BUDGET = 6.4;
const USER_BUDGET = 1.6;
const ESTIMATE_USD = 0.1;
const REAL_USD = 0.08;
const PROMPT = "Forty characters of prompt, exactly here"; // 40 characters

const config = (url: string) => ({
  providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
  models: { a: { provider: "p", name: "up-a", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
  routes: { default: { chain: [{ model: "a" }] } },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS", budget: { daily_usd: TENANT_BUDGET } },
    beta: { api_keys_env: "BETA_KEYS", user_budget: { daily_usd: USER_BUDGET } },
  },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "rbudget",
    config,
    workers: 3,
    concurrency: 20,
    env: { ACME_KEYS: ACME_KEY, BETA_KEYS: BETA_KEY },
  });
  stack.fake.setDefault("up-a", {
    kind: "ok",
    delayMs: 50,
    usage: { prompt_tokens: 20, completion_tokens: 60 },
  });
});

afterAll(async () => {
  await stack?.close();
});

const body = (extra: Record<string, unknown> = {}) => ({
  request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 80 },
  ...extra,
});

/** Spend recorded in Redis for a subject (`tenant:acme`, `user:beta:u1`), summed over periods of a kind. */
async function spendKey(subject: string, period: "d" | "m"): Promise<number> {
  const keys = await keysMatching(stack.redis, `${stack.tag}:spend:${subject}:${period}:*`);
  let total = 0;
  for (const key of keys) total += Number((await stack.redis.get(key)) ?? 0);
  return total;
}

const sum = (jobs: Json[]) => jobs.reduce((total: number, job: Json) => total + (job.cost_usd ?? 0), 0);

function expectOverBudget(job: Json) {
  expect(job).toMatchObject({ status: "failed", error: { type: "all_models_failed" }, cost_usd: 0 });
  expect(job.attempts).toHaveLength(1);
  expect(job.attempts[0]).toMatchObject({ model: "a", outcome: "skipped", reason: "over_budget" });
  // It says why a budget with money left refused it: the call's whole estimate did not fit.
  expect(job.attempts[0].message).toMatch(
    /^budget would be exceeded \(\d+\.\d{6} of \d+\.\d{6} USD spent; this call may cost up to \d+\.\d{6}\)$/,
  );
}

describe("budgets across three worker processes", () => {
  it("200 concurrent jobs: the tenant's daily spend stays within its budget", async () => {
    expect(PROMPT).toHaveLength(40);
    const callsBefore = stack.fake.callsFor("up-a").length;
    const ids = await Promise.all(Array.from({ length: 200 }, () => stack.submit(body(), ACME_KEY)));
    const jobs = await stack.waitAll(ids, 60_000, ACME_KEY, 200);
    await sleep(500); // successes settle after the job's result is stored
    const succeeded = jobs.filter((job: Json) => job.status === "succeeded");
    const over = jobs.filter((job: Json) => job.status !== "succeeded");
    const jobsSpend = sum(succeeded);
    const redisSpend = await spendKey("tenant:acme", "d");
    const usageKeys = await keysMatching(stack.redis, `${stack.tag}:usage:acme:*`);
    const usageTotal = usageKeys.length
      ? Number(await stack.redis.hget(usageKeys[0] as string, "total"))
      : null;
    const usageApi = await stack.request("GET", "/v1/usage", undefined, ACME_KEY);
    figure("tenant budget", {
      budget_usd: TENANT_BUDGET,
      jobs: jobs.length,
      succeeded: succeeded.length,
      over_budget: over.length,
      fit_by_estimate: Math.floor(TENANT_BUDGET / ESTIMATE_USD),
      fit_by_real_cost: Math.floor(TENANT_BUDGET / REAL_USD),
      spend_from_jobs_usd: Number(jobsSpend.toFixed(6)),
      spend_key_usd: Number(redisSpend.toFixed(6)),
      usage_hash_total_usd: usageTotal,
      get_v1_usage_cost_usd: usageApi.status === 200 ? usageApi.body.cost_usd : `HTTP ${usageApi.status}`,
      upstream_calls: stack.fake.callsFor("up-a").length - callsBefore,
    });

    for (const job of succeeded) expect(job.cost_usd).toBeCloseTo(REAL_USD, 9);
    expect(jobsSpend).toBeLessThanOrEqual(TENANT_BUDGET + 1e-9);
    expect(redisSpend).toBeLessThanOrEqual(TENANT_BUDGET + 1e-9);
    expect(redisSpend).toBeCloseTo(jobsSpend, 6);
    if (usageTotal !== null) expect(usageTotal).toBeCloseTo(jobsSpend, 6);
    // GET /v1/usage (an addition to the contract), where this build has it.
    if (usageApi.status !== 404) {
      expect(usageApi.status).toBe(200);
      expect(usageApi.body.cost_usd).toBeCloseTo(jobsSpend, 6);
    }
    // Reservations alone let at least budget / estimate through; real costs at most budget / real.
    expect(succeeded.length).toBeGreaterThanOrEqual(Math.floor(TENANT_BUDGET / ESTIMATE_USD) - 1);
    expect(succeeded.length).toBeLessThanOrEqual(Math.floor(TENANT_BUDGET / REAL_USD));
    // The rest never reached the provider: skipped over_budget, failing all_models_failed.
    expect(stack.fake.callsFor("up-a").length - callsBefore).toBe(succeeded.length);
    for (const job of over) expectOverBudget(job);
  }, 90_000);

  it("per-user budgets (request field `user`): each user's spend stays within its own budget", async () => {
    const callsBefore = stack.fake.callsFor("up-a").length;
    const users = ["u1", "u2"];
    const submissions = [
      ...users.flatMap((user) =>
        Array.from({ length: 50 }, () => ({ user, promise: stack.submit(body({ user }), BETA_KEY) })),
      ),
      // No user: no user budget applies.
      ...Array.from({ length: 10 }, () => ({ user: undefined, promise: stack.submit(body(), BETA_KEY) })),
    ];
    const ids = await Promise.all(submissions.map((entry) => entry.promise));
    const jobs = await stack.waitAll(ids, 60_000, BETA_KEY, ids.length);
    await sleep(500);
    const byUser = (user: string | undefined) => jobs.filter((_, index) => submissions[index]?.user === user);
    const report: Record<string, unknown> = { user_budget_usd: USER_BUDGET };
    for (const user of users) {
      const mine = byUser(user);
      const succeeded = mine.filter((job: Json) => job.status === "succeeded");
      const spend = sum(succeeded);
      const key = await spendKey(`user:beta:${user}`, "d");
      report[user] = {
        jobs: mine.length,
        succeeded: succeeded.length,
        over_budget: mine.length - succeeded.length,
        spend_from_jobs_usd: Number(spend.toFixed(6)),
        spend_key_usd: Number(key.toFixed(6)),
      };
      expect(spend).toBeLessThanOrEqual(USER_BUDGET + 1e-9);
      expect(key).toBeLessThanOrEqual(USER_BUDGET + 1e-9);
      expect(key).toBeCloseTo(spend, 6);
      expect(succeeded.length).toBeGreaterThanOrEqual(Math.floor(USER_BUDGET / ESTIMATE_USD) - 1);
      expect(succeeded.length).toBeLessThanOrEqual(Math.floor(USER_BUDGET / REAL_USD));
      for (const job of mine) {
        expect(job.user).toBe(user);
        if (job.status !== "succeeded") expectOverBudget(job);
      }
    }
    const anonymous = byUser(undefined);
    report.no_user = {
      jobs: anonymous.length,
      succeeded: anonymous.filter((job: Json) => job.status === "succeeded").length,
    };
    report.upstream_calls = stack.fake.callsFor("up-a").length - callsBefore;
    const usageApi = await stack.request("GET", "/v1/usage", undefined, BETA_KEY);
    report.get_v1_usage_by_user = usageApi.status === 200 ? usageApi.body.by_user : `HTTP ${usageApi.status}`;
    figure("user budgets", report);
    if (usageApi.status !== 404) {
      expect(usageApi.status).toBe(200);
      for (const user of users) {
        const spent = sum(byUser(user).filter((job: Json) => job.status === "succeeded"));
        expect(usageApi.body.by_user[user]).toBeCloseTo(spent, 6);
      }
    }
    expect(anonymous.every((job: Json) => job.status === "succeeded")).toBe(true);
    // Tenant beta has no tenant budget: nothing recorded against it as a cap.
    expect(await spendKey("tenant:beta", "d")).toBe(0);
  }, 90_000);
});
