/**
 * Proof: a job waiting on a limit holds no worker slot (contract, Semantics → Buckets: "the job
 * waits in the delayed set (no worker slot held)"). Route r1's provider allows 1 request a minute;
 * with 3 workers × concurrency 5 = 15 slots, 20 r1 jobs (more than the slots) wait in the delayed
 * set, and 50 jobs on the unlimited route r2 still finish as fast as without them. The waiting
 * jobs consume no attempt while their deadline allows.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import { chat, figure, type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const WORKERS = 3;
const CONCURRENCY = 5;

const config = (url: string) => ({
  providers: {
    slow: { type: "openai", base_url: url, api_key_env: "FAKE_KEY", limits: { rpm: 1 } },
    free: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
  },
  models: { m1: { provider: "slow", name: "up-m1" }, m2: { provider: "free", name: "up-m2" } },
  routes: {
    r1: { deadline_ms: 600_000, chain: [{ model: "m1" }] },
    r2: { chain: [{ model: "m2" }] },
  },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({ label: "rslot", config, workers: WORKERS, concurrency: CONCURRENCY });
});

afterAll(async () => {
  await stack?.close();
});

async function runR2(count: number, label: string): Promise<{ ms: number; jobs: Json[] }> {
  const started = Date.now();
  const ids = await Promise.all(
    Array.from({ length: count }, (_, index) =>
      stack.submit({ route: "r2", request: chat(`${label} ${index}`) }),
    ),
  );
  const jobs = await stack.waitAll(ids, 30_000, undefined, count);
  return { ms: Date.now() - started, jobs };
}

describe("waiting on a limit holds no worker slot", () => {
  it("50 jobs on an unlimited route finish promptly while 20 jobs wait on rpm 1", async () => {
    const { fake, redis, tag } = stack;
    fake.setDefault("up-m1", { kind: "ok", delayMs: 200 });
    fake.setDefault("up-m2", { kind: "ok", delayMs: 200 });

    // Baseline: 50 r2 jobs alone.
    const baseline = await runR2(50, "baseline");
    expect(baseline.jobs.every((job: Json) => job.status === "succeeded")).toBe(true);

    // 20 r1 jobs: one gets the minute's request, the others go to the delayed set.
    const r1Ids = await Promise.all(
      Array.from({ length: 20 }, (_, index) => stack.submit({ route: "r1", request: chat(`r1 ${index}`) })),
    );
    const delayedKey = `${tag}:completions:delayed`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const waiting = await redis.zcard(delayedKey);
      if (waiting >= 19 && fake.callsFor("up-m1").length >= 1) break;
      await sleep(50);
    }
    const delayedBefore = await redis.zrange(delayedKey, "0", "-1");
    expect(delayedBefore.filter((id) => r1Ids.includes(id)).length).toBe(19);

    // 50 r2 jobs while the r1 jobs wait.
    // Which r1 jobs sit in BullMQ's active list (a worker slot) while the r2 jobs run.
    const activeR1 = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const active = await redis.lrange(`${tag}:completions:active`, 0, -1);
        for (const id of active) if (r1Ids.includes(id)) activeR1.add(id);
        await sleep(25);
      }
    })();
    const loaded = await runR2(50, "loaded");
    sampling = false;
    await sampler;

    const r1Jobs = await Promise.all(r1Ids.map((id) => stack.job(id)));
    const r1Done = r1Jobs.filter((job: Json) => job.status === "succeeded");
    const r1Waiting = r1Jobs.filter(
      (job: Json) => !["succeeded", "failed", "cancelled"].includes(job.status),
    );
    const delayedAfter = await redis.zrange(delayedKey, "0", "-1");
    figure("waiting holds no slot", {
      worker_slots: WORKERS * CONCURRENCY,
      r2_50_jobs_alone_ms: baseline.ms,
      r2_50_jobs_with_20_r1_waiting_ms: loaded.ms,
      ratio: Number((loaded.ms / baseline.ms).toFixed(2)),
      r1_succeeded: r1Done.length,
      r1_waiting: r1Waiting.length,
      r1_in_delayed_set: delayedAfter.filter((id) => r1Ids.includes(id)).length,
      waiting_r1_jobs_seen_active_while_r2_ran: r1Waiting.filter((job: Json) => activeR1.has(job.id)).length,
      calls_to_m1: fake.callsFor("up-m1").length,
    });

    expect(loaded.jobs.every((job: Json) => job.status === "succeeded" && job.model === "m2")).toBe(true);
    // As fast as without the waiting jobs (a few seconds at most).
    expect(loaded.ms).toBeLessThan(Math.max(3 * baseline.ms, baseline.ms + 1_500));
    expect(loaded.ms).toBeLessThan(5_000);
    // The r1 jobs are still waiting, in the delayed set, not in worker slots.
    expect(fake.callsFor("up-m1")).toHaveLength(1);
    expect(r1Done).toHaveLength(1);
    expect(r1Waiting).toHaveLength(19);
    expect(delayedAfter.filter((id) => r1Ids.includes(id)).length).toBe(19);
    // (The one r1 job that got the minute's request may still have been finishing.)
    expect(r1Waiting.filter((job: Json) => activeR1.has(job.id))).toEqual([]);
    // Waiting consumed no attempt (no skipped entries while the deadline allows).
    for (const job of r1Waiting) {
      expect(job.attempts).toEqual([]);
      expect(job.status).toBe("queued");
    }
  }, 60_000);
});
