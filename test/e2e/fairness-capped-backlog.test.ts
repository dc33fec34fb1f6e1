/**
 * A tenant at its `max_concurrency` with a large backlog costs the others nothing (contract, Pools
 * and fairness: the cap bounds that tenant's running jobs; docs/configuration.md: nobody's slots
 * are held back). Found by a black-box probe: each of the capped tenant's jobs went back to the
 * delayed set for 200–500 ms and was claimed again, 2–5 times a second, each claim taking a worker
 * slot for its round trips: another tenant's 200 jobs took 7–13 s instead of ~3, and a 1,500-job
 * backlog made 134,000 Redis commands a second.
 *
 * Two worker processes × 4 slots, a 100 ms upstream; tenant capped (max_concurrency 3) queues 150
 * jobs, then tenant other 80.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callIntervals,
  fairnessConfig,
  figure,
  maxOverlap,
  submitMany,
  tenantEnv,
  tenantKey,
  waitDrained,
} from "./fairness-helpers.js";
import { type ResilienceStack, startResilienceStack } from "./resilience-helpers.js";

const LATENCY_MS = 100;
const CAP = 3;
const CAPPED_JOBS = 150;

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "faircb",
    config: fairnessConfig({ capped: { max_concurrency: CAP }, other: {} }),
    workers: 0,
    env: tenantEnv(["capped", "other"]),
  });
  stack.fake.setDefault("up-m", { kind: "ok", delayMs: LATENCY_MS, content: "ok" });
});

afterAll(async () => {
  await stack?.close();
});

describe("a capped tenant's backlog", () => {
  it("is claimed about once per job while it waits for its slots, and the other tenant gets the rest", async () => {
    await Promise.all([stack.startWorker("faircb-worker-1", 4), stack.startWorker("faircb-worker-2", 4)]);
    const cappedIds = await submitMany(stack, "capped", CAPPED_JOBS);
    const otherIds = await submitMany(stack, "other", 80);
    await waitDrained(stack, 120_000);

    // BullMQ counts every claim of a job in its hash (`ats`): a job put back for its tenant's cap
    // and claimed again counts each time.
    const pipeline = stack.redis.pipeline();
    for (const id of cappedIds) pipeline.hget(`${stack.tag}:completions:${id}`, "ats");
    const claims = ((await pipeline.exec()) ?? []).map(([, value]) => Number(value ?? 0));
    const meanClaims = claims.reduce((sum, value) => sum + value, 0) / claims.length;

    const cappedCalls = callIntervals(stack, "capped", LATENCY_MS);
    const otherCalls = callIntervals(stack, "other", LATENCY_MS);
    const otherSpan =
      Math.max(...otherCalls.map(([, end]) => end)) - Math.min(...otherCalls.map(([start]) => start));
    figure("capped backlog", {
      slots: 8,
      cap: CAP,
      capped_jobs: CAPPED_JOBS,
      capped_claims_mean: Number(meanClaims.toFixed(2)),
      capped_claims_max: Math.max(...claims),
      capped_max_open: maxOverlap(cappedCalls),
      other_jobs: otherIds.length,
      other_span_ms: otherSpan,
      other_max_open: maxOverlap(otherCalls),
    });
    expect(cappedCalls).toHaveLength(CAPPED_JOBS);
    expect(otherCalls).toHaveLength(otherIds.length);
    expect(maxOverlap(cappedCalls)).toBeLessThanOrEqual(CAP);
    // Claimed once, put back, woken when a slot of its tenant frees: about two claims a job, where
    // a retry every 200–500 ms made ~10 over the backlog's ~5 s.
    expect(meanClaims).toBeLessThan(3.5);
    // The other tenant's 80 jobs use the 5 slots the cap leaves: ~1.6 s of 100 ms calls.
    expect(otherSpan).toBeLessThan(5_000);
    expect(await stack.redis.zcard(`${stack.tag}:tenant-running:capped`)).toBe(0);
  }, 150_000);

  it("wakes the next waiting job when a slot frees, past waiting jobs cancelled meanwhile", async () => {
    stack.fake.reset();
    stack.fake.setDefault("up-m", { kind: "ok", delayMs: LATENCY_MS, content: "ok" });
    stack.fake.script(
      "up-m",
      ...Array.from({ length: CAP }, () => ({ kind: "ok" as const, delayMs: 1_500 })),
    );
    const running = await submitMany(stack, "capped", CAP, { lanes: 1 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    // As many waiting jobs cancelled as there are slots to free, ahead of the one left waiting.
    const waiting = await submitMany(stack, "capped", CAP + 1, { lanes: 1 });
    const next = waiting.at(-1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const id of waiting.slice(0, CAP)) {
      const deleted = await stack.request("DELETE", `/v1/jobs/${id}`, undefined, tenantKey("capped"));
      expect([200, 202]).toContain(deleted.status);
    }
    const first = await stack.waitJob(running[0] as string, 20_000, tenantKey("capped"));
    const woken = await stack.waitJob(next as string, 20_000, tenantKey("capped"));
    expect(woken.status).toBe("succeeded");
    // Woken by the first freed slot (~1.5 s after the running ones started), not by its own
    // look 10–12 s after it was put back: the cancelled jobs' places in line were passed over.
    expect(woken.finished_at - first.finished_at).toBeLessThanOrEqual(2);
  }, 60_000);
});
