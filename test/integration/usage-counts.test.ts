import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeBehaviour, type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

/**
 * GET /v1/usage's `routes`, `models` and `weekly` over real jobs and gateway calls: a request is
 * counted once however many attempts it made, and every attempt it paid for counts in its cost.
 */
describe("usage counts: cost per successful request", () => {
  let openai: FakeOpenAI;
  let stack: Stack;
  // 1,000 prompt tokens at $1/Mtok + 500 completion tokens at $2/Mtok.
  const usage = { prompt_tokens: 1000, completion_tokens: 500 };
  const CALL_USD = 0.002;
  const ok: FakeBehaviour = { kind: "ok", content: "Blue.", usage };
  // Billed like any answer (the provider worked on it), then the chain falls back.
  const filtered: FakeBehaviour = { kind: "ok", finishReason: "content_filter", usage };
  const messages = [{ role: "user", content: "Name a colour." }];
  const price = { input_per_mtok: 1, output_per_mtok: 2 };

  beforeAll(async () => {
    openai = await startFakeOpenAI({ apiKey: "sk-o" });
    openai.setDefault("up-alpha", ok);
    openai.setDefault("up-beta", ok);
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { O_KEY: "sk-o" },
      config: {
        providers: { oa: { type: "openai", base_url: openai.url, api_key_env: "O_KEY" } },
        models: {
          alpha: { provider: "oa", name: "up-alpha", price },
          beta: { provider: "oa", name: "up-beta", price },
        },
        routes: {
          default: { chain: [{ model: "beta" }] },
          main: {
            chain: [
              { model: "alpha", max_retries: 0 },
              { model: "beta", max_retries: 0 },
            ],
          },
        },
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await openai?.close();
  });

  async function job(body: Record<string, unknown>, status: string) {
    const created = await stack.request("POST", "/v1/jobs", { body: { request: { messages }, ...body } });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`);
    expect(done.body.status).toBe(status);
    return done.body;
  }
  function period() {
    const today = new Date().toISOString().slice(0, 10);
    // From yesterday: a run across midnight UTC still sees every request.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    return `start=${yesterday}&end=${today}`;
  }
  async function usageOnceCounted(requests: number, query = "") {
    let body: Record<string, unknown> & {
      routes: Record<string, Record<string, number | null>>;
      models: Record<string, Record<string, number | null>>;
    } = { routes: {}, models: {} };
    // Counts are written as requests end, fired and forgotten: wait until all have landed.
    await expect
      .poll(async () => {
        body = (await stack.request("GET", `/v1/usage?${period()}${query}`)).body;
        return Object.values(body.models).reduce((sum, row) => sum + Number(row.requests), 0);
      })
      .toBe(requests);
    return body;
  }

  it("counts jobs and gateway calls per route and per first model, failed attempts' costs included", async () => {
    // Route `main`: two succeed first try ($0.002 each).
    await job({ route: "main" }, "succeeded");
    await job({ route: "main" }, "succeeded");
    // Alpha's answer is filtered (billed), beta answers: a fallback that cost two calls.
    openai.script("up-alpha", filtered);
    const filteredThenBeta = await job({ route: "main" }, "succeeded");
    expect(filteredThenBeta.cost_usd).toBeCloseTo(2 * CALL_USD, 10);
    // Alpha answers 500 (not billed), beta answers: a fallback that cost one call.
    openai.script("up-alpha", { kind: "server_error" });
    await job({ route: "main" }, "succeeded");
    // Both filtered: the request failed, and paid for both attempts.
    openai.script("up-alpha", filtered);
    openai.script("up-beta", filtered);
    const failed = await job({ route: "main" }, "failed");
    expect(failed.cost_usd).toBeCloseTo(2 * CALL_USD, 10);
    // The gateway: `main` named as the model is the route; `beta` named directly has no route.
    for (const model of ["main", "beta"]) {
      const call = await stack.request("POST", "/v1/chat/completions", {
        body: { model, messages, max_tokens: 20 },
      });
      expect(call.status).toBe(200);
    }
    // A `models` list: no route either, counted under its first model.
    await job({ models: ["beta"] }, "succeeded");

    const body = await usageOnceCounted(8);
    // main: 6 requests (5 jobs + 1 gateway call), 5 succeeded, 2 fell back; $0.016 paid in all.
    const main = { requests: 6, succeeded: 5, failed: 1, fallbacks: 2, cost_usd: 0.016 };
    expect(body.routes).toEqual({ main: { ...main, cost_per_success_usd: 0.0032 } });
    // Models are keyed by the chain's first model (what was asked for), whoever answered.
    expect(body.models).toEqual({
      alpha: { ...main, cost_per_success_usd: 0.0032 },
      beta: {
        requests: 2,
        succeeded: 2,
        failed: 0,
        fallbacks: 0,
        cost_usd: 0.004,
        cost_per_success_usd: 0.002,
      },
    });
    // The spend fields are still there, and agree: spend by answering model, by route.
    // Spend settles in batches: poll.
    await expect
      .poll(async () => {
        const spend = (await stack.request("GET", `/v1/usage?${period()}`)).body;
        return { by_route: spend.by_route, cost_usd: spend.cost_usd };
      })
      .toEqual({ by_route: { main: 0.016 }, cost_usd: 0.02 });
    expect(body).not.toHaveProperty("weekly");
  });

  it("?group=week adds weekly rows by ISO week (UTC)", async () => {
    const body = (await usageOnceCounted(8, "&group=week")) as unknown as {
      weekly: Array<Record<string, unknown>>;
    };
    expect(body.weekly.length).toBeGreaterThanOrEqual(1);
    for (const row of body.weekly) {
      expect(Object.keys(row).sort()).toEqual(
        ["cost_per_success_usd", "cost_usd", "requests", "succeeded", "week"].sort(),
      );
      expect(row.week).toMatch(/^\d{4}-W\d{2}$/);
    }
    const sum = (field: string) => body.weekly.reduce((total, row) => total + Number(row[field]), 0);
    expect(sum("requests")).toBe(8);
    expect(sum("succeeded")).toBe(7);
    expect(sum("cost_usd")).toBeCloseTo(0.02, 10);
    const week = body.weekly.find((row) => row.requests === 8);
    if (week) expect(week.cost_per_success_usd).toBeCloseTo(0.02 / 7, 9);
  });

  it("a week with no success has a null cost per success, and a period of weeks lists each", async () => {
    const body = (await stack.request("GET", "/v1/usage?start=2026-12-28&end=2027-01-11&group=week")).body;
    expect(body.weekly).toEqual([
      { week: "2026-W53", requests: 0, succeeded: 0, cost_usd: 0, cost_per_success_usd: null },
      { week: "2027-W01", requests: 0, succeeded: 0, cost_usd: 0, cost_per_success_usd: null },
      { week: "2027-W02", requests: 0, succeeded: 0, cost_usd: 0, cost_per_success_usd: null },
    ]);
    expect(body.routes).toEqual({});
    expect(body.models).toEqual({});
  });

  it("an unknown group is a 400 naming `group`", async () => {
    const response = await stack.request("GET", "/v1/usage?group=month");
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ type: "invalid_request_error", param: "group" });
  });
});
