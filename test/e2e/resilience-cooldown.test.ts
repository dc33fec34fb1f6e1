/**
 * Proof: a 429's cooldown is shared by every worker (contract, Semantics → Cooldowns). After A
 * answers 429 with `retry-after: 3`, no worker process calls A for 3 s, while jobs keep arriving
 * at all three; they wait for the cooldown (or fall back) and all succeed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import {
  chat,
  figure,
  type ResilienceStack,
  sleep,
  startResilienceStack,
  stream,
} from "./resilience-helpers.js";

const RETRY_AFTER_S = 3;

const config = (url: string) => ({
  providers: {
    pa: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
    pb: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
  },
  models: { a: { provider: "pa", name: "up-a" }, b: { provider: "pb", name: "up-b" } },
  routes: { default: { chain: [{ model: "a", timeout_ms: 2000 }, { model: "b" }] } },
});

let stack: ResilienceStack;

beforeAll(async () => {
  // Which worker answered is read from the "hop succeeded" lines: a first-try success logs at debug.
  stack = await startResilienceStack({
    label: "rcool",
    config,
    workers: 3,
    concurrency: 10,
    logLevel: "debug",
  });
});

afterAll(async () => {
  await stack?.close();
});

describe("429 cooldown shared by three worker processes", () => {
  it("after a 429 with retry-after: 3, no worker calls the provider for 3 s", async () => {
    const { fake } = stack;
    fake.setDefault("up-a", { kind: "ok", content: "from a", delayMs: 20 });
    fake.setDefault("up-b", { kind: "ok", content: "from b" });

    // Warm-up: A serves a stream of jobs normally (every worker has its connections open).
    const warm = await stream(
      100,
      (index) => stack.submit({ request: chat(`warm ${index}`) }),
      (index) => index >= 15,
    );
    const warmJobs = await stack.waitAll(warm, 20_000);
    expect(warmJobs.every((job: Json) => job.status === "succeeded" && job.model === "a")).toBe(true);

    // The 429 lands while nothing else is in flight, so no call can have been admitted before it.
    fake.script("up-a", { kind: "rate_limited", retryAfterSeconds: RETRY_AFTER_S });
    const callsBefore = fake.callsFor("up-a").length;
    const limitedJob = await stack.submit({ request: chat("meets the 429") });
    const cooldownKey = `${stack.tag}:cooldown:provider:pa`;
    const deadline = Date.now() + 10_000;
    while (!(await stack.redis.exists(cooldownKey)) && Date.now() < deadline) await sleep(5);
    const limitedCall = fake.callsFor("up-a")[callsBefore];
    expect(limitedCall, "the 429 call").toBeDefined();
    const t429 = limitedCall?.at ?? 0;
    const cooldownUntil = Number(await stack.redis.hget(cooldownKey, "until"));

    // Jobs keep arriving at all workers during the cooldown and after it.
    const submittedAt: number[] = [];
    const ids = await stream(
      100,
      (index) => {
        submittedAt.push(Date.now());
        return stack.submit({ request: chat(`during cooldown ${index}`) });
      },
      (index) => index >= 50,
    );
    const jobs = await stack.waitAll(ids, 30_000);
    const limited = await stack.waitJob(limitedJob, 20_000);

    const after = fake.callsFor("up-a").filter((call) => call.at > t429);
    const inCooldown = after.filter((call) => call.at < t429 + RETRY_AFTER_S * 1000);
    const firstAfter = after[0];
    const duringCooldown = jobs.filter((_, index) => (submittedAt[index] ?? 0) < cooldownUntil - 100);
    const waited = duringCooldown.filter((job: Json) => job.model === "a");
    const fellBack = duringCooldown.filter((job: Json) => job.model === "b");
    // Which worker processes ran the jobs that arrived during the cooldown.
    const idsDuring = new Set(duringCooldown.map((job: Json) => job.id));
    const workersDuring = stack.workers.filter((worker) =>
      worker.logs().some((log) => idsDuring.has(log.job_id) && log.outcome === "success"),
    );
    figure("429 cooldown", {
      retry_after_s: RETRY_AFTER_S,
      cooldown_until_minus_429_ms: cooldownUntil - t429,
      calls_to_a_within_3s: inCooldown.length,
      first_call_to_a_after_429_ms: firstAfter ? firstAfter.at - t429 : null,
      jobs_submitted_during_cooldown: duringCooldown.length,
      waited_then_a: waited.length,
      fell_back_to_b: fellBack.length,
      worker_processes_running_them: workersDuring.length,
      calls_to_a_after: after.length,
    });

    // The job that met the 429 recorded it (with the wait) and fell back to B.
    expect(limited).toMatchObject({ status: "succeeded", model: "b" });
    expect(limited.attempts[0]).toMatchObject({
      model: "a",
      outcome: "error",
      reason: "rate_limited",
      http_status: 429,
      retry_after_ms: RETRY_AFTER_S * 1000,
    });
    // The cooldown: no call to A from any worker for 3 s, then A again soon after.
    expect(cooldownUntil - t429).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000);
    expect(inCooldown).toEqual([]);
    expect(firstAfter).toBeDefined();
    expect((firstAfter?.at ?? 0) - t429).toBeLessThanOrEqual(RETRY_AFTER_S * 1000 + 1_500);
    // Jobs that arrived meanwhile all succeeded, on several worker processes, without calling A early.
    expect(duringCooldown.length).toBeGreaterThanOrEqual(20);
    expect(jobs.every((job: Json) => job.status === "succeeded")).toBe(true);
    expect(workersDuring.length).toBeGreaterThanOrEqual(2);
    for (const job of waited) {
      // Waiting consumed no attempt: one call, to A, after the cooldown.
      expect(job.attempts).toHaveLength(1);
      expect(job.attempts[0]).toMatchObject({ model: "a", outcome: "success" });
    }
    for (const job of fellBack) {
      expect(job.attempts[0]).toMatchObject({ model: "a", outcome: "skipped", reason: "rate_limited" });
    }
  }, 60_000);
});
