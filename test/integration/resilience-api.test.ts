import { budgetPeriods, createKeys } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const price = { input_per_mtok: 1000, output_per_mtok: 1000 };
const config = {
  providers: {
    flaky: {
      type: "simulated",
      simulate: { error_rate: 1 },
      breaker: { min_requests: 3, failure_threshold: 0.5, open_ms: 60000 },
    },
    steady: { type: "simulated", simulate: { output_tokens: 10 } },
    metered: { type: "simulated", limits: { rpm: 60, burst: 1 }, simulate: { output_tokens: 10 } },
    roomy: { type: "simulated", limits: { rpm: 60000, tpm: 10000000 }, simulate: { output_tokens: 10 } },
  },
  models: {
    broken: { provider: "flaky" },
    solid: { provider: "steady", price },
    paced: { provider: "metered" },
    leased: { provider: "roomy", price },
  },
  routes: {
    default: { chain: [{ model: "broken" }, { model: "solid" }] },
    direct: { chain: [{ model: "solid" }] },
    slow: { chain: [{ model: "paced" }] },
    roomy: { chain: [{ model: "leased" }] },
  },
  tenants: {
    ops: { api_keys_env: "OPS_KEYS", admin: true },
    shop: { api_keys_env: "SHOP_KEYS", budget: { daily_usd: 0.2 }, user_budget: { daily_usd: 0.1 } },
    bulk: { api_keys_env: "BULK_KEYS", budget: { daily_usd: 100 } },
  },
};
const ops = { authorization: "Bearer ops-key" };
const shop = { authorization: "Bearer shop-key" };
const ask = (content: string) => ({ messages: [{ role: "user", content }], max_tokens: 10 });

describe("shared resilience through the API", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { OPS_KEYS: "ops-key", SHOP_KEYS: "shop-key", BULK_KEYS: "bulk-key" },
    });
  });
  afterAll(() => stack?.close());

  async function run(body: Record<string, unknown>, headers = ops) {
    const created = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(created.status).toBe(202);
    return (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, { headers })).body;
  }

  it("opens a provider's breaker after min_requests failures and skips it while open", async () => {
    for (let index = 0; index < 3; index += 1) {
      const job = await run({ request: ask(`fail ${index}`) });
      expect(job.attempts[0]).toMatchObject({ model: "broken", outcome: "error", reason: "server_error" });
      expect(job.model).toBe("solid");
    }
    const skipped = await run({ request: ask("after") });
    expect(skipped.attempts[0]).toMatchObject({
      model: "broken",
      outcome: "skipped",
      reason: "circuit_open",
    });
    expect(skipped.status).toBe("succeeded");
    const providers = await stack.request("GET", "/v1/providers", { headers: ops });
    const flaky = providers.body.data.find((provider: { id: string }) => provider.id === "flaky");
    expect(flaky.breaker).toMatchObject({ id: "provider:flaky", state: "open", forced: null });
    expect(flaky.breaker.transitions[0]).toMatchObject({
      from: "closed",
      to: "open",
      why: "3 of 3 calls failed",
    });
    expect(flaky.recent).toMatchObject({ calls: 3, errors: 3, skips: 1 });
    expect(flaky.models[0]).toMatchObject({ id: "broken", breaker: { shared_with_provider: true } });
  });

  it("exposes queue depth, breaker states and recent calls at /metrics, to an admin key only", async () => {
    expect((await stack.request("GET", "/metrics")).status).toBe(401);
    expect((await stack.request("GET", "/metrics", { headers: shop })).status).toBe(403);
    const metrics = await stack.request("GET", "/metrics", { headers: ops });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(metrics.body).toMatch(/^cascade_queue_jobs\{queue="completions",state="completed"\} \d+$/m);
    expect(metrics.body).toContain('cascade_breaker_state{breaker="provider:flaky",state="open"} 1');
    expect(metrics.body).toContain('cascade_recent_calls{scope="provider",id="flaky",kind="errors"} 3');
  });

  it("lets an admin force a breaker open and back to auto; others get 403", async () => {
    const denied = await stack.request("POST", "/v1/providers/steady/breaker", {
      body: { state: "open" },
      headers: shop,
    });
    expect(denied.status).toBe(403);
    const bad = await stack.request("POST", "/v1/providers/steady/breaker", {
      body: { state: "half" },
      headers: ops,
    });
    expect(bad.status).toBe(400);
    expect(
      (await stack.request("POST", "/v1/providers/nope/breaker", { body: { state: "open" }, headers: ops }))
        .status,
    ).toBe(404);
    const forced = await stack.request("POST", "/v1/providers/steady/breaker", {
      body: { state: "open" },
      headers: ops,
    });
    expect(forced.status).toBe(200);
    expect(forced.body.breaker).toMatchObject({ state: "open", forced: "open" });
    const job = await run({ route: "direct", request: ask("forced") });
    expect(job.status).toBe("failed");
    expect(job.error.type).toBe("all_models_failed");
    expect(job.attempts[0]).toMatchObject({ outcome: "skipped", reason: "circuit_open" });
    const auto = await stack.request("POST", "/v1/providers/steady/breaker", {
      body: { state: "auto" },
      headers: ops,
    });
    expect(auto.body.breaker).toMatchObject({ state: "closed", forced: null });
    expect((await run({ route: "direct", request: ask("auto") })).status).toBe("succeeded");
  });

  it("waits for rpm tokens in the delayed set, without recording attempts", async () => {
    const started = Date.now();
    const [first, second] = await Promise.all([
      run({ route: "slow", request: ask("one") }),
      run({ route: "slow", request: ask("two") }),
    ]);
    expect(first.status).toBe("succeeded");
    expect(second.status).toBe("succeeded");
    // rpm 60 with burst 1: the second call had to wait about a second for its token.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(first.attempts).toHaveLength(1);
    expect(second.attempts).toHaveLength(1);
    const paced = (await stack.request("GET", "/v1/providers", { headers: ops })).body.data.find(
      (provider: { id: string }) => provider.id === "metered",
    );
    expect(paced.limits).toEqual([
      expect.objectContaining({ scope: "provider", kind: "rpm", limit: 60, capacity: 1 }),
    ]);
  });

  it("reserves budgets atomically, skips over_budget, and reports usage by route, model and user", async () => {
    // Each call costs about (prompt ~13 + 10 output) tokens at $1000/Mtok ≈ $0.02-0.03.
    const jobs = await Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        run({ route: "direct", user: index % 2 ? "ann" : "bob", request: ask(`spend ${index}`) }, shop),
      ),
    );
    const spent = jobs.reduce((sum, job) => sum + job.cost_usd, 0);
    expect(spent).toBeLessThanOrEqual(0.2 + 1e-9);
    const refused = jobs.filter((job) => job.status === "failed");
    expect(refused.length).toBeGreaterThan(0);
    for (const job of refused)
      expect(job.attempts[0]).toMatchObject({ outcome: "skipped", reason: "over_budget" });
    for (const user of ["ann", "bob"]) {
      const userSpend = jobs.filter((job) => job.user === user).reduce((sum, job) => sum + job.cost_usd, 0);
      expect(userSpend).toBeLessThanOrEqual(0.1 + 1e-9);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const usage = await stack.request("GET", "/v1/usage", { headers: shop });
    expect(usage.status).toBe(200);
    expect(usage.body.cost_usd).toBeCloseTo(spent, 9);
    expect(usage.body.by_route.direct).toBeCloseTo(spent, 9);
    expect(usage.body.by_model.solid).toBeCloseTo(spent, 9);
    expect((usage.body.by_user.ann ?? 0) + (usage.body.by_user.bob ?? 0)).toBeCloseTo(spent, 9);
    const other = await stack.request("GET", "/v1/usage", { headers: ops });
    expect(other.body.tenant).toBe("ops");
    expect(other.body.by_user).toEqual({});
    expect((await stack.request("GET", "/v1/usage?start=2026-13-01", { headers: shop })).status).toBe(400);
    // A day that is not on the calendar is not the next month's.
    const feb30 = await stack.request("GET", "/v1/usage?start=2026-02-30&end=2026-03-05", { headers: shop });
    expect(feb30.status).toBe(400);
    expect(feb30.body.error).toMatchObject({ param: "start" });
    expect(feb30.body.error.message).toMatch(/not a date/);
    // Ten thousand years is refused from the two dates alone (it once built every day first).
    const ages = await stack.request("GET", "/v1/usage?start=0001-01-01&end=9999-12-31", { headers: shop });
    expect(ages.status).toBe(400);
    expect(ages.body.error.message).toMatch(/at most 366 days/);
  });

  it("admits from leases of large buckets and budgets, and gives unused budget back", async () => {
    const bulk = { authorization: "Bearer bulk-key" };
    const jobs = await Promise.all(
      Array.from({ length: 30 }, (_, index) => run({ route: "roomy", request: ask(`lease ${index}`) }, bulk)),
    );
    for (const job of jobs) expect(job.status).toBe("succeeded");
    const spent = jobs.reduce((sum, job) => sum + job.cost_usd, 0);
    // Leases last 250 ms and settlements are batched: then Redis holds exactly the real spend.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const recorded = Number(
      await stack.redis.get(keys.spend({ tenant: "bulk" }, budgetPeriods(Date.now()).day)),
    );
    expect(recorded).toBeCloseTo(spent, 9);
    const provider = (await stack.request("GET", "/v1/providers", { headers: ops })).body.data.find(
      (entry: { id: string }) => entry.id === "roomy",
    );
    expect(provider.recent.calls).toBe(30);
  });
});
