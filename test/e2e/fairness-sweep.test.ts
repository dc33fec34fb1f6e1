/**
 * Proof: worker processes run the fair-share sweep (docs/decisions/0019, "Stragglers"). With the
 * queue paused (so nothing runs), a job whose priority was computed before a rebase is queued after
 * it, about `rebased_by` too far back; within one sweep interval (10 s) a worker puts it back in
 * line, score and job hash alike, and a job queued in line stays where it was.
 */

import type { RedisClient } from "@cascade/shared";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testRedis } from "../support/redis-clients.js";
import { fairnessConfig, figure, tenantEnv } from "./fairness-helpers.js";
import { type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const SCORE_STEP = 2 ** 32;
const GAP = 12_000;

let stack: ResilienceStack;
let queue: Queue;
let connection: RedisClient;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "fairs",
    config: fairnessConfig({ a: {} }),
    workers: 2,
    env: tenantEnv(["a"]),
  });
  connection = testRedis(undefined, { maxRetriesPerRequest: null });
  queue = new Queue("completions", { connection, prefix: stack.tag });
  await queue.pause();
});

afterAll(async () => {
  await queue?.close();
  connection?.disconnect();
  await stack?.close();
});

describe("fair-share sweep", () => {
  it("a worker puts a job queued across a rebase back in line within one sweep interval", async () => {
    const data = { v: 1, tenant: "a", priority: 5 };
    // The clock just after a rebase by 1,000,000: the largest tag handed out is now 5,000.
    await stack.redis.hset(`${stack.tag}:fair-clock`, "v", "100", "top", "5000", "rebased_by", "1000000");
    await queue.add("completions", data, { jobId: "in-line", priority: 4_000 + 4 * GAP });
    const stale = 1_000_000 + 4_100 + 4 * GAP;
    await queue.add("completions", data, { jobId: "straggler", priority: stale });
    const started = Date.now();
    let priority = stale;
    while (priority === stale && Date.now() - started < 15_000) {
      await sleep(250);
      priority = Math.floor(
        Number(await stack.redis.zscore(`${stack.tag}:completions:prioritized`, "straggler")) / SCORE_STEP,
      );
    }
    figure("sweep", { moved_after_ms: Date.now() - started, from: stale, to: priority });
    expect(priority).toBe(stale - 1_000_000);
    expect(Number(await stack.redis.hget(`${stack.tag}:completions:straggler`, "priority"))).toBe(
      stale - 1_000_000,
    );
    const inLine = Math.floor(
      Number(await stack.redis.zscore(`${stack.tag}:completions:prioritized`, "in-line")) / SCORE_STEP,
    );
    expect(inLine).toBe(4_000 + 4 * GAP);
    // Back in line: right behind the job that was queued in line before it.
    expect(await stack.redis.zrange(`${stack.tag}:completions:prioritized`, "0", "-1")).toEqual([
      "in-line",
      "straggler",
    ]);
  }, 60_000);
});
