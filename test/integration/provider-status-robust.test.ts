/**
 * One malformed breaker hash (an operator's hand edit, a future version's field) must not take
 * GET /v1/providers and the whole /metrics scrape down with it: that entry shows defaults.
 */
import { createKeys } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } }, other: { type: "simulated" } },
  models: {
    fast: { provider: "sim" },
    slow: { provider: "other" },
    limited: { provider: "sim", limits: { rpm: 60 } },
  },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { ops: { api_keys_env: "OPS_KEYS", admin: true } },
};
const ops = { authorization: "Bearer ops-key" };

describe("provider status with a malformed hash", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      withoutWorker: true,
      env: { OPS_KEYS: "ops-key" },
    });
  });
  afterAll(() => stack?.close());

  it("answers 200 with the other providers intact, and /metrics still scrapes", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    await stack.redis.hset(keys.breaker("provider:sim"), {
      state: "sideways",
      log: "{not json",
      open_until: "soon",
    });
    const status = await stack.request("GET", "/v1/providers", { headers: ops });
    expect(status.status).toBe(200);
    const ids = status.body.data.map((provider: { id: string }) => provider.id);
    expect(ids).toEqual(["sim", "other"]);
    expect((await stack.request("GET", "/metrics", { headers: ops })).status).toBe(200);
    const override = await stack.request("POST", "/v1/providers/other/breaker", {
      body: { state: "open" },
      headers: ops,
    });
    expect(override.status).toBe(200);
    expect(override.body.breaker.state).toBe("open");
  });

  it("shows an open breaker past its open_until as half_open, as the breaker_open alert reads it, in /v1/providers and /metrics", async () => {
    // The audit: with no call since the open time ran out, /v1/providers and the breaker gauge said
    // "open" (open_until in the past) while the alert said half-open.
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    await stack.redis.del(keys.breaker("provider:sim"));
    await stack.redis.hset(keys.breaker("provider:sim"), {
      state: "open",
      open_until: String(Date.now() - 5_000),
    });
    const status = await stack.request("GET", "/v1/providers", { headers: ops });
    const sim = status.body.data.find((provider: { id: string }) => provider.id === "sim");
    expect(sim.breaker.state).toBe("half_open");
    expect(sim.breaker.open_until).toBeNull();
    const metrics = await stack.request("GET", "/metrics", { headers: ops });
    expect(metrics.body as string).toContain(
      'cascade_breaker_state{breaker="provider:sim",state="half_open"} 1',
    );
    expect(metrics.body as string).toContain('cascade_breaker_state{breaker="provider:sim",state="open"} 0');
    // Still open: as it was.
    const until = Date.now() + 60_000;
    await stack.redis.hset(keys.breaker("provider:sim"), { open_until: String(until) });
    const open = await stack.request("GET", "/v1/providers", { headers: ops });
    const stillOpen = open.body.data.find((provider: { id: string }) => provider.id === "sim");
    expect(stillOpen.breaker.state).toBe("open");
    expect(stillOpen.breaker.open_until).toBe(Math.ceil(until / 1000));
  });

  it("shows a model's own 429 cooldown (a model with its own limits) on its entry", async () => {
    // The audit: Redis held the model's cooldown, and /v1/providers showed none.
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const until = Date.now() + 30_000;
    await stack.redis.hset(keys.cooldown("model", "limited"), { until: String(until), streak: "1" });
    const status = await stack.request("GET", "/v1/providers", { headers: ops });
    const sim = status.body.data.find((provider: { id: string }) => provider.id === "sim");
    const models = Object.fromEntries(
      sim.models.map((model: { id: string; cooldown_until: number | null }) => [
        model.id,
        model.cooldown_until,
      ]),
    );
    expect(models).toEqual({ fast: null, limited: Math.ceil(until / 1000) });
  });
});
