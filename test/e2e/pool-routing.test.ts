/**
 * Pooled models end to end (contract, "Pools and fairness"): a failure or 429 on one deployment
 * tries another deployment of the same model (each its own attempt, with its deployment id,
 * whatever the hop's max_retries); a 429 cools that deployment only; the strategies spread calls
 * as they say (lowest_latency puts a deployment that failed lately last); a deployment's own key
 * and endpoint are used. Real API and worker processes, one fake OpenAI upstream that tells
 * deployments apart by the upstream model name each sends.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import { chat, figure, type ResilienceStack, startResilienceStack } from "./resilience-helpers.js";

const DEPLOYMENT_KEY = "sk-deployment-two-key";

const pool = (ids: string[], extra: Record<string, unknown> = {}, weights: number[] = []) => ({
  ...extra,
  deployments: ids.map((id, index) => ({
    id,
    provider: "p",
    name: `up-${id}`,
    ...(weights[index] ? { weight: weights[index] } : {}),
  })),
});

const config = (url: string) => ({
  providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
  models: {
    plain: { provider: "p", name: "up-plain" },
    // lim1 first almost always (weight 100), so the first wave meets its 429.
    limited: pool(["lim1", "lim2"], { strategy: "weighted" }, [100, 1]),
    // err1 first almost always (weight 100): with even weights all ten jobs went to err2 first
    // one run in 1,024, and the test saw no 5xx to go past.
    failing: pool(["err1", "err2"], { strategy: "weighted" }, [100, 1]),
    // tw2 picked first whenever it may be (weight 100), so a retry of it would show.
    waiting: pool(["tw1", "tw2"], { strategy: "weighted" }, [1, 100]),
    weighted: pool(
      ["w1", "w2"],
      { strategy: "weighted", price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
      [3, 1],
    ),
    fastest: pool(["slow", "fast"], { strategy: "lowest_latency" }),
    // refused answers 401 to every call: it is never measured.
    guarded: pool(["refused", "good"], { strategy: "lowest_latency" }),
    idlest: pool(["busy", "idle"], { strategy: "least_busy" }),
    keyed: {
      deployments: [
        { id: "k1", provider: "p", name: "up-k1" },
        { id: "k2", provider: "p", name: "up-k2", api_key_env: "POOL_KEY_TWO", base_url: url },
      ],
    },
  },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "pool-routing",
    config,
    workers: 2,
    concurrency: 20,
    env: { POOL_KEY_TWO: DEPLOYMENT_KEY },
  });
});

afterAll(async () => {
  await stack?.close();
});

async function runAll(models: string[], count: number): Promise<Json[]> {
  const ids = await Promise.all(
    Array.from({ length: count }, (_, index) =>
      stack.submit({ request: chat(`pool routing ${index}`), models }),
    ),
  );
  return stack.waitAll(ids, 60_000);
}

const share = (calls: number, other: number) => calls / Math.max(1, calls + other);

describe("a pooled model's deployments", () => {
  it("a 429 on one deployment goes to another deployment of the same model, and cools that deployment only", async () => {
    const { fake } = stack;
    fake.setDefault("up-lim1", { kind: "rate_limited", retryAfterSeconds: 30 });
    fake.setDefault("up-lim2", { kind: "ok" });
    // A first wave finds lim1 refusing; a second, after it, must not call lim1 at all.
    const wave = await runAll(["limited"], 4);
    const seenBefore = fake.callsFor("up-lim1").length;
    const jobs = [...wave, ...(await runAll(["limited"], 8))];
    expect(fake.callsFor("up-lim1").length).toBe(seenBefore);
    for (const job of jobs) {
      expect(job.status).toBe("succeeded");
      expect(job.model).toBe("limited");
      expect(job.attempts.at(-1)).toMatchObject({ outcome: "success", deployment: "lim2", provider: "p" });
    }
    const bounced = jobs.filter((job) => job.attempts.length > 1);
    expect(bounced.length).toBeGreaterThan(0);
    for (const job of bounced) {
      expect(job.attempts[0]).toMatchObject({ outcome: "error", reason: "rate_limited", deployment: "lim1" });
    }
    // The provider itself is not cooling down: a plain model on it is called at once.
    const plain = await runAll(["plain"], 1);
    expect(plain[0]?.status).toBe("succeeded");
    expect(plain[0]?.attempts).toHaveLength(1);
    expect(await stack.redis.hget(`${stack.tag}:cooldown:deployment:limited/lim1`, "until")).not.toBeNull();
    expect(await stack.redis.exists(`${stack.tag}:cooldown:provider:p`)).toBe(0);
  });

  it("a 5xx on one deployment goes to another, whatever the hop's max_retries", async () => {
    const { fake } = stack;
    fake.setDefault("up-err1", { kind: "server_error" });
    fake.setDefault("up-err2", { kind: "ok" });
    const jobs = await runAll(["failing"], 10);
    for (const job of jobs) {
      expect(job.status).toBe("succeeded");
      expect(job.attempts.at(-1)).toMatchObject({ deployment: "err2", outcome: "success" });
      if (job.attempts.length > 1)
        expect(job.attempts[0]).toMatchObject({ deployment: "err1", reason: "server_error" });
    }
    expect(fake.callsFor("up-err1").length).toBeGreaterThan(0);
  });

  it("a deployment that failed is not called again after the job waited for another one's cooldown", async () => {
    const { fake } = stack;
    // First tw2 fails and tw1 answers 429 (Retry-After 2 s): tw1 cools down for 2 s.
    fake.setDefault("up-tw2", { kind: "server_error" });
    fake.setDefault("up-tw1", { kind: "rate_limited", retryAfterSeconds: 2 });
    const cooling = await runAll(["waiting"], 1);
    // tw2 goes first 100 times in 101 (its weight); either way both were called, and tw1 cools.
    expect(cooling[0]?.attempts.map((attempt: Json) => attempt.deployment).sort()).toEqual(["tw1", "tw2"]);
    // Now a job (max_retries 0) finds tw1 cooling: tw2 fails, the job waits for tw1 (longer than
    // a worker waits in line: it is handed back to the delayed set), and then tw1 answers.
    fake.setDefault("up-tw1", { kind: "ok" });
    const tw2Before = fake.callsFor("up-tw2").length;
    const [job] = await stack.waitAll(
      [await stack.submit({ request: chat("waits for tw1"), models: ["waiting", "plain"] })],
      30_000,
    );
    expect(job?.status).toBe("succeeded");
    expect(fake.callsFor("up-tw2").length - tw2Before).toBe(1);
    expect(job?.attempts).toMatchObject([
      { deployment: "tw2", outcome: "error", reason: "server_error" },
      { deployment: "tw1", outcome: "success", model: "waiting" },
    ]);
  });

  it("weighted: calls follow the deployments' weights (3 : 1)", async () => {
    const jobs = await runAll(["weighted"], 200);
    expect(jobs.every((job) => job.status === "succeeded")).toBe(true);
    const w1 = stack.fake.callsFor("up-w1").length;
    const w2 = stack.fake.callsFor("up-w2").length;
    figure("pool weighted 3:1", { w1, w2, share_w1: share(w1, w2) });
    expect(share(w1, w2)).toBeGreaterThan(0.65);
    expect(share(w1, w2)).toBeLessThan(0.85);
  });

  it("lowest_latency: most calls go to the faster deployment once both are measured", async () => {
    stack.fake.setDefault("up-slow", { kind: "ok", delayMs: 1_500 });
    stack.fake.setDefault("up-fast", { kind: "ok", delayMs: 5 });
    // Measured first, one at a time, then in waves of five (a latency, not a queue, to compare).
    for (let index = 0; index < 4; index += 1) await runAll(["fastest"], 1);
    const before = stack.fake.callsFor("up-slow").length;
    for (let wave = 0; wave < 8; wave += 1) await runAll(["fastest"], 5);
    const slow = stack.fake.callsFor("up-slow").length - before;
    const fast = stack.fake.callsFor("up-fast").length;
    figure("pool lowest_latency", {
      slow,
      fast,
      moving_average_ms: await stack.redis.hgetall(`${stack.tag}:pool-latency:fastest`),
    });
    expect(share(fast, slow)).toBeGreaterThan(0.8);
  });

  it("lowest_latency: a deployment whose key is refused is not tried first on every request", async () => {
    // Only successes are measured and a 401 neither opens a breaker nor cools the deployment:
    // `refused` stayed "never measured" and went first on every request (20 of 20 here).
    stack.fake.setDefault("up-refused", {
      kind: "status",
      status: 401,
      body: {
        error: {
          message: "Incorrect API key provided",
          type: "invalid_request_error",
          param: null,
          code: "invalid_api_key",
        },
      },
    });
    const firstTries: string[] = [];
    for (let index = 0; index < 20; index += 1) {
      const [job] = await runAll(["guarded"], 1);
      expect(job?.status).toBe("succeeded");
      expect(job?.attempts.at(-1)).toMatchObject({ deployment: "good", outcome: "success" });
      firstTries.push(job?.attempts[0].deployment);
    }
    const refusedFirst = firstTries.filter((deployment) => deployment === "refused").length;
    figure("pool lowest_latency, one key refused", {
      refused_first: refusedFirst,
      failures: await stack.redis.hgetall(`${stack.tag}:pool-failures:guarded`),
    });
    expect(stack.fake.callsFor("up-refused").length).toBe(refusedFirst);
    // At most once (both unmeasured: a coin toss), then after `good` while its failure is
    // remembered (30 s).
    expect(refusedFirst).toBeLessThanOrEqual(1);
  });

  it("least_busy: calls go where fewest are in flight across workers", async () => {
    stack.fake.setDefault("up-busy", { kind: "ok", delayMs: 3_000 });
    stack.fake.setDefault("up-idle", { kind: "ok", delayMs: 20 });
    // Jobs arrive over a second or so, as load does: each choice sees the calls already out.
    const ids: string[] = [];
    for (let index = 0; index < 60; index += 1) {
      ids.push(await stack.submit({ request: chat(`least busy ${index}`), models: ["idlest"] }));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const jobs = await stack.waitAll(ids, 60_000);
    expect(jobs.every((job) => job.status === "succeeded")).toBe(true);
    const busy = stack.fake.callsFor("up-busy").length;
    const idle = stack.fake.callsFor("up-idle").length;
    figure("pool least_busy", { busy, idle });
    expect(share(idle, busy)).toBeGreaterThan(0.75);
  });

  it("a deployment's own api_key_env and base_url are used for its calls", async () => {
    const jobs = await runAll(["keyed"], 30);
    expect(jobs.every((job) => job.status === "succeeded")).toBe(true);
    const k1 = stack.fake.callsFor("up-k1");
    const k2 = stack.fake.callsFor("up-k2");
    expect(k1.length).toBeGreaterThan(0);
    expect(k2.length).toBeGreaterThan(0);
    for (const call of k2) expect(call.headers.authorization).toBe(`Bearer ${DEPLOYMENT_KEY}`);
    for (const call of k1) expect(call.headers.authorization).not.toBe(`Bearer ${DEPLOYMENT_KEY}`);
  });

  it("GET /v1/providers, GET /v1/usage and the breaker gauges show deployments", async () => {
    const providers = await stack.request("GET", "/v1/providers");
    expect(providers.status).toBe(200);
    const p = providers.body.data.find((provider: Json) => provider.id === "p");
    const lim1 = p.models.find((model: Json) => model.id === "limited" && model.deployment === "lim1");
    expect(lim1).toMatchObject({ breaker: { id: "deployment:limited/lim1", state: "closed" } });
    expect(lim1.cooldown_until).toBeGreaterThan(Date.now() / 1000);
    const usage = await stack.request("GET", "/v1/usage");
    expect(usage.status).toBe(200);
    expect(usage.body.by_deployment["weighted/w1"]).toBeGreaterThan(0);
    expect(usage.body.by_deployment["weighted/w2"]).toBeGreaterThan(0);
    const response = await fetch(`${stack.api.url}/metrics`);
    const text = await response.text();
    expect(text).toMatch(/cascade_breaker_state\{breaker="deployment:limited\/lim1",state="closed"\} 1/);
  });

  it("the gateway answers from a pool, streamed or not, naming the provider that answered", async () => {
    for (const stream of [false, true]) {
      const response = await fetch(`${stack.api.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "weighted", stream, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-cascade-model")).toBe("weighted");
      expect(response.headers.get("x-cascade-provider")).toBe("p");
      await response.text();
    }
  });
});
