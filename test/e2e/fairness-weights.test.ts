/**
 * Proof: weighted round robin (contract, "Pools and fairness"). Tenant a (weight 1) and tenant b
 * (weight 3) both have 600 jobs queued at the same priority when one worker process ×
 * concurrency 20 starts on a 50 ms upstream: while both are backlogged, b's jobs start about
 * three times as often as a's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fairnessConfig, figure, jobTimes, submitMany, tenantEnv, waitDrained } from "./fairness-helpers.js";
import { type ResilienceStack, startResilienceStack } from "./resilience-helpers.js";

const JOBS = 600;
/** The first starts counted: both tenants are still backlogged throughout (b's 600 last ~800 starts). */
const WINDOW = 400;

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "fairw",
    config: fairnessConfig({ a: { weight: 1 }, b: { weight: 3 } }),
    workers: 0,
    env: tenantEnv(["a", "b"]),
  });
  stack.fake.setDefault("up-m", { kind: "ok", delayMs: 50, content: "ok" });
});

afterAll(async () => {
  await stack?.close();
});

describe("weights", () => {
  it("a weight-3 tenant gets ~3× the starts of a weight-1 tenant while both wait", async () => {
    const aIds = await submitMany(stack, "a", JOBS);
    const bIds = await submitMany(stack, "b", JOBS);
    await stack.startWorker("fairw-worker-1", 20);
    await waitDrained(stack, 120_000);

    const jobs = [
      ...(await jobTimes(stack.redis, stack.tag, aIds, "a")),
      ...(await jobTimes(stack.redis, stack.tag, bIds, "b")),
    ];
    expect(jobs.filter((job) => job.state !== "completed")).toEqual([]);
    const first = [...jobs].sort((x, y) => x.started - y.started).slice(0, WINDOW);
    const a = first.filter((job) => job.tenant === "a").length;
    const b = first.filter((job) => job.tenant === "b").length;
    const windows: Array<{ a: number; b: number }> = [];
    for (let start = 0; start < WINDOW; start += 100) {
      const slice = first.slice(start, start + 100);
      windows.push({
        a: slice.filter((job) => job.tenant === "a").length,
        b: slice.filter((job) => job.tenant === "b").length,
      });
    }
    figure("weights 1 vs 3", {
      jobs_each: JOBS,
      window_starts: WINDOW,
      a_starts: a,
      b_starts: b,
      b_over_a: Number((b / a).toFixed(2)),
      per_100_starts: windows,
    });
    expect(b / a).toBeGreaterThanOrEqual(2.5);
    expect(b / a).toBeLessThanOrEqual(3.5);
  }, 120_000);
});
