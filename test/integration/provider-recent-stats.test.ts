/**
 * GET /v1/providers' `recent` stats (ADR 0029): attempts (calls, errors, skips) as before, and a
 * fallback rate counted in requests, as the contract counts a route's: of the finished requests
 * that tried a provider, model or pool deployment, those answered by another. A retry answered by
 * the same model is no fallback; a pool's move to another deployment of the same model is none for
 * the model or the deployment. Pool deployments have their stats too, in /v1/providers and in
 * `cascade_recent_calls{scope="deployment"}`. Real API and worker, simulated providers.
 */
import { createKeys, type FinishedRequest, RecentStatsRecorder } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: {
    broken: { type: "simulated", simulate: { error_rate: 1, latency_ms: 0 } },
    fine: { type: "simulated", simulate: { latency_ms: 0 } },
  },
  models: {
    bad: { provider: "broken" },
    good: { provider: "fine" },
    pooled: {
      strategy: "weighted",
      deployments: [
        { id: "down", provider: "broken", weight: 1000 },
        { id: "up", provider: "fine", weight: 1 },
      ],
    },
  },
  routes: {
    default: { chain: [{ model: "bad" }, { model: "good" }] },
    pool: { chain: [{ model: "pooled" }, { model: "good" }] },
  },
  tenants: { ops: { api_keys_env: "OPS_KEYS", admin: true } },
};
const ops = { authorization: "Bearer ops-key" };
// biome-ignore lint/suspicious/noExplicitAny: assertions read whatever JSON came back.
type Json = Record<string, any>;

describe("recent stats per provider, model and deployment", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ redisUrl: inject("redisUrl"), config, env: { OPS_KEYS: "ops-key" } });
  });
  afterAll(() => stack?.close());

  const run = async (route: string, count: number) => {
    const jobs: Json[] = [];
    for (let index = 0; index < count; index++) {
      const created = await stack.request("POST", "/v1/jobs", {
        body: { request: { messages: [{ role: "user", content: "hi" }], max_tokens: 5 }, route },
        headers: ops,
      });
      const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: ops });
      expect(done.body.status).toBe("succeeded");
      jobs.push(done.body);
    }
    return jobs;
  };

  /** /v1/providers once every request's counts are written (they are gathered for 200 ms). */
  const status = async () => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const providers = (await stack.request("GET", "/v1/providers", { headers: ops })).body.data as Json[];
    const provider = (id: string) => providers.find((each) => each.id === id) as Json;
    const model = (id: string, deployment?: string) =>
      providers
        .flatMap((each) => each.models as Json[])
        .find((each) => each.id === id && each.deployment === deployment) as Json;
    return { provider, model };
  };

  it("counts a chain's fallback once per request, for the model and the provider it left", async () => {
    await run("default", 3);
    const { provider, model } = await status();
    expect(model("bad").recent).toMatchObject({
      calls: 3,
      errors: 3,
      requests: 3,
      fallbacks: 3,
      fallback_rate: 1,
    });
    expect(model("good").recent).toMatchObject({
      calls: 3,
      errors: 0,
      requests: 3,
      fallbacks: 0,
      fallback_rate: 0,
    });
    expect(provider("broken").recent).toMatchObject({ requests: 3, fallbacks: 3, error_rate: 1 });
  });

  it("gives a pool's deployments their own stats; moving to another deployment is no fallback", async () => {
    const jobs = await run("pool", 2);
    const { model } = await status();
    const down = model("pooled", "down").recent;
    const up = model("pooled", "up").recent;
    // The weights make `down` first (nearly always); its failure goes to `up`, which answers for
    // the same model.
    const tried = jobs.filter((job) => job.attempts.some((each: Json) => each.deployment === "down")).length;
    expect(tried).toBeGreaterThan(0);
    expect(jobs.every((job) => job.model === "pooled")).toBe(true);
    expect(down).toMatchObject({ calls: tried, errors: tried, requests: tried, fallbacks: 0 });
    expect(up).toMatchObject({ calls: 2, errors: 0, requests: 2, fallbacks: 0 });
    // The pooled model's own figures, across its deployments, on each deployment's entry.
    for (const deployment of ["down", "up"]) {
      expect(model("pooled", deployment).model_recent).toMatchObject({
        calls: 2 + tried,
        errors: tried,
        requests: 2,
        fallbacks: 0,
        fallback_rate: 0,
      });
    }
    const metrics = (await stack.request("GET", "/metrics", { headers: ops })).body as string;
    expect(metrics).toMatch(
      new RegExp(
        `^cascade_recent_calls\\{scope="deployment",id="pooled/down",kind="errors"\\} ${tried}$`,
        "m",
      ),
    );
    expect(metrics).toMatch(/^cascade_recent_calls\{scope="model",id="bad",kind="fallbacks"\} 3$/m);
    expect(metrics).toMatch(/^cascade_recent_calls\{scope="model",id="pooled",kind="requests"\} 2$/m);
  });

  it("deletes a stats hash's fields older than its window as it writes a new minute", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const key = keys.stats("model", "good");
    const minute = Math.floor(Date.now() / 60_000);
    await stack.redis.del(key);
    // Left by a writer 8 minutes ago; the hash has been written since, so it never expired.
    await stack.redis.hset(
      key,
      `${minute - 8}:calls`,
      5,
      `${minute - 8}:requests`,
      5,
      `${minute - 2}:calls`,
      1,
    );
    await run("default", 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const fields = Object.keys(await stack.redis.hgetall(key));
    expect(fields).not.toContain(`${minute - 8}:calls`);
    expect(fields).not.toContain(`${minute - 8}:requests`);
    // Inside the window: kept.
    expect(fields).toContain(`${minute - 2}:calls`);
  });

  it("does not count a retry answered by the same model as a fallback, nor a failed request", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const recorder = new RecentStatsRecorder(stack.redis, keys);
    const now = Date.now();
    const attempt = (model: string, provider: string, outcome: "success" | "error") => ({
      model,
      provider,
      outcome,
      duration_ms: 1,
      started_at: Math.floor(now / 1000),
      ...(outcome === "error" ? { reason: "server_error" as const } : {}),
    });
    const request = (overrides: Partial<FinishedRequest>): FinishedRequest => ({
      door: "job",
      tenant: "ops",
      route: null,
      firstModel: "solo",
      status: "succeeded",
      costUsd: 0,
      attempts: [],
      createdAtMs: now,
      finishedAtMs: now,
      ...overrides,
    });
    recorder.finished(
      request({
        model: "solo",
        provider: "solo-p",
        attempts: [attempt("solo", "solo-p", "error"), attempt("solo", "solo-p", "success")],
      }),
    );
    recorder.finished(request({ status: "failed", attempts: [attempt("solo", "solo-p", "error")] }));
    await recorder.close();
    const minute = Math.floor(now / 60_000);
    expect(await stack.redis.hgetall(keys.stats("model", "solo"))).toEqual({ [`${minute}:requests`]: "2" });
    expect(await stack.redis.ttl(keys.stats("model", "solo"))).toBeGreaterThan(500);
  });
});
