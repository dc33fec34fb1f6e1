/**
 * Proof: calls that end badly are still charged what the provider bills (issue "Trust", item 3;
 * docs/decisions/0013-charging-calls-that-end-badly.md). Real API and worker processes, a fake
 * OpenAI upstream:
 *
 * - a completion the provider stopped with finish_reason content_filter carries usage: it is
 *   charged exactly that usage;
 * - a call that timed out is charged at least its prompt estimate;
 * - a streaming job cancelled mid-stream is charged its prompt estimate plus the streamed text
 *   estimated like a prompt (characters / 4), so cancelling just before the end is not free.
 *
 * - a streaming call abandoned by a worker's shutdown is charged the same way, once: the job,
 *   finished by another worker, costs that charge plus its successful call.
 *
 * In every case the job's cost_usd, the tenant's spend key and GET /v1/usage all say the same.
 * Prices: $1000 per million tokens, i.e. $0.001 a token; PROMPT is estimated at 20 tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keysMatching } from "../support/redis-clients.js";
import type { Json } from "./helpers.js";
import { figure, type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const KEY = "bad-endings-key-1";
const PROMPT = "Forty characters of prompt, exactly here"; // 40 characters: 10 + 10 tokens
const PROMPT_USD = 0.02;
const TOKEN_USD = 0.001;
const LONG_ANSWER = "word12 ".repeat(40); // 280 characters, streamed in 40 chunks

const config = (url: string) => ({
  providers: {
    p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
    // One socket: a second call waits inside the worker until the first has ended.
    q: { type: "openai", base_url: url, api_key_env: "FAKE_KEY", connections: 1 },
  },
  models: {
    a: { provider: "p", name: "up-a", price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
    narrow: { provider: "q", name: "up-narrow", price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
    slow: { provider: "p", name: "up-slow", price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
  },
  routes: {
    default: { chain: [{ model: "a", timeout_ms: 500 }] },
    strict: { on_content_filter: "fail", chain: [{ model: "a" }] },
    streaming: { chain: [{ model: "slow", timeout_ms: 30_000 }] },
    narrow_long: { chain: [{ model: "narrow", timeout_ms: 3_000 }] },
    narrow_short: { chain: [{ model: "narrow", timeout_ms: 500 }] },
  },
  tenants: { acme: { api_keys_env: "ACME_KEYS", budget: { daily_usd: 5 } } },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "rbadend",
    config,
    workers: 1,
    concurrency: 5,
    // A short grace: a worker told to stop abandons its running calls after 300 ms.
    env: { ACME_KEYS: KEY, SHUTDOWN_TIMEOUT_MS: "300" },
  });
});

afterAll(async () => {
  await stack?.close();
});

const request = (extra: Record<string, unknown> = {}) => ({
  messages: [{ role: "user", content: PROMPT }],
  max_tokens: 100,
  ...extra,
});

/** The tenant's spend key, GET /v1/usage and the job costs, once settlements are written. */
async function books(jobs: Json[]) {
  await sleep(500);
  const keys = await keysMatching(stack.redis, `${stack.tag}:spend:tenant:acme:d:*`);
  const spend = keys.length ? Number(await stack.redis.get(keys[0] as string)) : 0;
  const usage = await stack.request("GET", "/v1/usage", undefined, KEY);
  const fromJobs = jobs.reduce((total: number, job: Json) => total + job.cost_usd, 0);
  return { spend, usage: usage.body.cost_usd as number, fromJobs };
}

describe("calls that end badly", () => {
  const finished: Json[] = [];

  it("a content_filter completion is charged the usage it carried", async () => {
    stack.fake.script("up-a", {
      kind: "ok",
      content: "I cannot",
      finishReason: "content_filter",
      usage: { prompt_tokens: 20, completion_tokens: 30 },
    });
    const job = await stack.waitJob(
      await stack.submit({ request: request(), route: "strict" }, KEY),
      20_000,
      KEY,
    );
    finished.push(job);
    expect(job).toMatchObject({ status: "failed", error: { type: "content_filter" } });
    expect(job.cost_usd).toBeCloseTo(50 * TOKEN_USD, 9);
    const { spend, usage, fromJobs } = await books(finished);
    figure("content_filter", { job_cost_usd: job.cost_usd, spend, usage });
    expect(spend).toBeCloseTo(fromJobs, 9);
    expect(usage).toBeCloseTo(fromJobs, 9);
  });

  it("a timed-out call not streamed is charged its prompt and whole answer (max_tokens), as the provider bills it", async () => {
    // The provider finishes a non-streamed answer whether or not anyone still listens.
    stack.fake.script("up-a", { kind: "hang" });
    const job = await stack.waitJob(await stack.submit({ request: request() }, KEY), 20_000, KEY);
    finished.push(job);
    expect(job.attempts[0]).toMatchObject({ outcome: "error", reason: "timeout" });
    expect(job.cost_usd).toBeCloseTo(PROMPT_USD + 100 * TOKEN_USD, 9);
    const { spend, usage, fromJobs } = await books(finished);
    figure("timeout", { job_cost_usd: job.cost_usd, spend, usage });
    expect(spend).toBeCloseTo(fromJobs, 9);
    expect(usage).toBeCloseTo(fromJobs, 9);
  });

  it("a timed-out call that never got a socket (no provider saw it) is charged no whole answer", async () => {
    stack.fake.script("up-narrow", { kind: "hang" }, { kind: "hang" });
    const first = await stack.submit({ request: request(), route: "narrow_long" }, KEY);
    const deadline = Date.now() + 10_000;
    while (stack.fake.callsFor("up-narrow").length === 0 && Date.now() < deadline) await sleep(20);
    // The one socket is taken: this call waits for it past its 500 ms and times out unsent.
    const second = await stack.waitJob(
      await stack.submit({ request: request(), route: "narrow_short" }, KEY),
      20_000,
      KEY,
    );
    expect(second.attempts[0]).toMatchObject({ outcome: "error", reason: "timeout" });
    expect(stack.fake.callsFor("up-narrow")).toHaveLength(1);
    expect(second.cost_usd).toBeCloseTo(PROMPT_USD, 9);
    const sent = await stack.waitJob(first, 20_000, KEY);
    expect(sent.cost_usd).toBeCloseTo(PROMPT_USD + 100 * TOKEN_USD, 9);
    finished.push(second, sent);
    const { spend, usage, fromJobs } = await books(finished);
    expect(spend).toBeCloseTo(fromJobs, 9);
    expect(usage).toBeCloseTo(fromJobs, 9);
  });

  it("a streaming job cancelled just before its end pays for the prompt and what it streamed", async () => {
    stack.fake.script("up-slow", { kind: "ok", content: LONG_ANSWER, chunkDelayMs: 100 });
    const callsBefore = stack.fake.callsFor("up-slow").length;
    const id = await stack.submit({ request: request({ stream: true }), route: "streaming" }, KEY);
    const deadline = Date.now() + 10_000;
    while (stack.fake.callsFor("up-slow").length === callsBefore && Date.now() < deadline) await sleep(20);
    await sleep(3_000); // about 30 of the 40 chunks have streamed
    const cancelled = await stack.request("DELETE", `/v1/jobs/${id}`, undefined, KEY);
    expect(cancelled.status).toBe(202);
    const job = await stack.waitJob(id, 20_000, KEY);
    finished.push(job);
    expect(job.status).toBe("cancelled");
    // At least 20 chunks of 7 characters streamed (35 tokens); not all 70 tokens of the answer.
    expect(job.cost_usd).toBeGreaterThanOrEqual(PROMPT_USD + 35 * TOKEN_USD - 1e-9);
    expect(job.cost_usd).toBeLessThan(PROMPT_USD + 70 * TOKEN_USD);
    const { spend, usage, fromJobs } = await books(finished);
    figure("cancelled stream", { job_cost_usd: job.cost_usd, spend, usage });
    expect(spend).toBeCloseTo(fromJobs, 9);
    expect(usage).toBeCloseTo(fromJobs, 9);
  }, 40_000);

  it("a streaming call abandoned by shutdown is charged once, and the job's cost includes it", async () => {
    stack.fake.script("up-slow", { kind: "ok", content: LONG_ANSWER, chunkDelayMs: 100 });
    stack.fake.setDefault("up-slow", { kind: "ok", usage: { prompt_tokens: 20, completion_tokens: 10 } });
    const callsBefore = stack.fake.callsFor("up-slow").length;
    const id = await stack.submit({ request: request({ stream: true }), route: "streaming" }, KEY);
    const deadline = Date.now() + 10_000;
    while (stack.fake.callsFor("up-slow").length === callsBefore && Date.now() < deadline) await sleep(20);
    await sleep(1_500); // about 15 of the 40 chunks have streamed
    const [worker] = stack.workers;
    worker?.kill("SIGTERM");
    expect((await worker?.waitForExit())?.code).toBe(0);
    await stack.startWorker("rbadend-worker-2");
    const job = await stack.waitJob(id, 30_000, KEY);
    finished.push(job);
    expect(job.status).toBe("succeeded");
    expect(stack.fake.callsFor("up-slow").length - callsBefore).toBe(2);
    // The abandoned call: prompt + at least 10 chunks of 7 characters; then the answer, $0.03.
    const abandoned = job.cost_usd - 30 * TOKEN_USD;
    expect(abandoned).toBeGreaterThanOrEqual(PROMPT_USD + 17 * TOKEN_USD - 1e-9);
    expect(abandoned).toBeLessThan(PROMPT_USD + 70 * TOKEN_USD);
    const { spend, usage, fromJobs } = await books(finished);
    figure("abandoned by shutdown", { job_cost_usd: job.cost_usd, abandoned_usd: abandoned, spend, usage });
    expect(spend).toBeCloseTo(fromJobs, 9);
    expect(usage).toBeCloseTo(fromJobs, 9);
  }, 60_000);
});
