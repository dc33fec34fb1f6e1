/**
 * Proof: `max_concurrency` caps a tenant's running jobs across all workers, and the other tenants
 * use the slots it leaves. Tenant capped (max_concurrency 5) queues 60 jobs and tenant other 200,
 * then two worker processes × concurrency 10 (20 slots) start on a 300 ms upstream. From the
 * fake upstream's calls (each open for its 300 ms): capped never has more than 5 calls open at
 * once, and other has most of the remaining 15 while capped still waits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callIntervals,
  fairnessConfig,
  figure,
  jobTimes,
  maxOverlap,
  submitMany,
  tenantEnv,
  waitDrained,
} from "./fairness-helpers.js";
import { type ResilienceStack, startResilienceStack } from "./resilience-helpers.js";

const LATENCY_MS = 300;
const CAP = 5;

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "fairc",
    config: fairnessConfig({ capped: { max_concurrency: CAP }, other: {} }),
    workers: 0,
    env: tenantEnv(["capped", "other"]),
  });
  stack.fake.setDefault("up-m", { kind: "ok", delayMs: LATENCY_MS, content: "ok" });
});

afterAll(async () => {
  await stack?.close();
});

describe("max_concurrency", () => {
  it(`a tenant capped at ${CAP} never runs more than ${CAP} at once; others take the rest`, async () => {
    const cappedIds = await submitMany(stack, "capped", 60);
    const otherIds = await submitMany(stack, "other", 200);
    await Promise.all([stack.startWorker("fairc-worker-1", 10), stack.startWorker("fairc-worker-2", 10)]);
    await waitDrained(stack, 120_000);

    const jobs = [
      ...(await jobTimes(stack.redis, stack.tag, cappedIds, "capped")),
      ...(await jobTimes(stack.redis, stack.tag, otherIds, "other")),
    ];
    expect(jobs.filter((job) => job.state !== "completed")).toEqual([]);
    const calls = stack.fake.callsFor("up-m");
    // Every call counts for the overlap (a run that lost its lock under load and ran again is a
    // real second run); each job is counted once for the totals.
    const cappedCalls = callIntervals(stack, "capped", LATENCY_MS);
    const cappedJobsCalled = new Set(
      calls
        .map((call) => String(call.body?.messages?.at(-1)?.content ?? ""))
        .filter((text) => text.startsWith("capped ")),
    ).size;
    const cappedEnd = Math.max(...cappedCalls.map(([, end]) => end));
    const otherCalls = callIntervals(stack, "other", LATENCY_MS);
    const otherWhileCapped = otherCalls.filter(([start]) => start < cappedEnd - LATENCY_MS);
    const cappedMost = maxOverlap(cappedCalls);
    const otherMost = maxOverlap(otherWhileCapped);
    const cappedJobs = jobs.filter((job) => job.tenant === "capped").length;
    figure("max_concurrency 5", {
      slots: 20,
      capped_calls: cappedCalls.length,
      capped_jobs_called: cappedJobsCalled,
      capped_max_open: cappedMost,
      other_max_open_while_capped_waited: otherMost,
      capped_jobs: cappedJobs,
      capped_span_ms: cappedEnd - Math.min(...cappedCalls.map(([start]) => start)),
    });
    expect(cappedJobsCalled).toBe(60);
    expect(cappedMost).toBeLessThanOrEqual(CAP);
    expect(cappedMost).toBe(CAP);
    expect(otherMost).toBeGreaterThanOrEqual(12);
    // Slots are released: nothing of the tenant is left counted as running.
    expect(await stack.redis.zcard(`${stack.tag}:tenant-running:capped`)).toBe(0);
  }, 120_000);
});
