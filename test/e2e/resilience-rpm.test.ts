/**
 * Proof: an rpm bucket is shared by every worker (contract, Semantics → Buckets: "rpm refills
 * continuously; its capacity is burst (default ceil(rpm / 60)), so no 60-second window exceeds
 * rpm + burst"). Three worker processes, provider limits { rpm: 120 } (burst 2), 150 jobs queued
 * at once with a long deadline, so the provider is saturated for ~75 s: no 60-second window of
 * upstream calls holds more than 122, and over the first 70 s the delivered rate is at least 95%
 * of rpm.
 *
 * The longest proof (~75 s): a 60-second window needs a run longer than a minute.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import {
  chat,
  figure,
  maxInWindow,
  type ResilienceStack,
  startResilienceStack,
} from "./resilience-helpers.js";

const RPM = 120;
const BURST = Math.max(1, Math.ceil(RPM / 60));
const RUN_MS = 70_000;
const JOBS = 150;

const config = (url: string) => ({
  providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY", limits: { rpm: RPM } } },
  models: { a: { provider: "p", name: "up-a" } },
  routes: { default: { deadline_ms: 600_000, chain: [{ model: "a", timeout_ms: 10_000 }] } },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({ label: "rrpm", config, workers: 3, concurrency: 20 });
});

afterAll(async () => {
  await stack?.close();
});

describe("rpm bucket shared by three worker processes", () => {
  it(
    `no 60 s window exceeds rpm + burst, and ≥ 95% of rpm is delivered over ${RUN_MS / 1000} s`,
    async () => {
      const { fake } = stack;
      fake.setDefault("up-a", { kind: "ok", delayMs: 30 });
      const ids = await stack.submitMany(JOBS, (index) => ({ request: chat(`rpm job ${index}`) }));
      const jobs = await stack.waitAll(ids, RUN_MS + 90_000, undefined, 50);

      const calls = fake.callsFor("up-a").sort((x, y) => x.at - y.at);
      const first = calls[0]?.at ?? 0;
      const inRun = calls.filter((call) => call.at < first + RUN_MS).length;
      const window = maxInWindow(calls, 60_000);
      const perMinute: number[] = [];
      for (let from = first; from < (calls.at(-1)?.at ?? first) + 1; from += 60_000)
        perMinute.push(calls.filter((call) => call.at >= from && call.at < from + 60_000).length);
      const stats = await stack.redis.hgetall(`${stack.tag}:stats:provider:p`);
      const statTotal = (kind: string) =>
        Object.entries(stats)
          .filter(([field]) => field.endsWith(`:${kind}`))
          .reduce((total, [, value]) => total + Number(value), 0);
      const delivered = inRun / (RUN_MS / 60_000);
      figure("rpm across 3 workers", {
        rpm: RPM,
        burst: BURST,
        jobs: jobs.length,
        calls: calls.length,
        max_calls_in_any_60s_window: window.max,
        limit_rpm_plus_burst: RPM + BURST,
        calls_in_run: inRun,
        delivered_per_minute: delivered,
        delivered_ratio: Number((delivered / RPM).toFixed(3)),
        calls_per_minute_from_first_call: perMinute,
        admissions_denied_while_waiting: statTotal("skips"),
        admissions_granted: statTotal("calls"),
      });

      expect(jobs.filter((job: Json) => job.status !== "succeeded")).toEqual([]);
      // Every job made exactly one call: waiting consumed no attempt.
      for (const job of jobs) expect(job.attempts).toHaveLength(1);
      expect(calls).toHaveLength(JOBS);
      expect(window.max).toBeLessThanOrEqual(RPM + BURST);
      expect(delivered).toBeGreaterThanOrEqual(0.95 * RPM);
    },
    RUN_MS + 120_000,
  );
});
