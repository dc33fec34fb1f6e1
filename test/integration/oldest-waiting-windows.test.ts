/**
 * The oldest waiting job past OLDEST_WAITING_EXACT prioritized jobs, where the script reads
 * windows rather than every job: fair share tags a less urgent job V + (p − 1) × gap, so the first
 * added priority-10 job waits at the start of its band, right after the more urgent backlog, at an
 * index no evenly spaced window need hit. One priority-10 job enqueued ten minutes ago, then 3,000
 * priority-1 and ~2,000 priority-10 jobs enqueued now: its age is found (it was ~0 s past the bound,
 * so the metric and the queue_age alert missed the stuck job they are for).
 */
import { afterAll, describe, expect, it } from "vitest";
import { oldestWaitingMs } from "../../packages/shared/dist/fairness/oldest-waiting.js";
import { testRedis } from "../support/redis-clients.js";

const STEP = 4_294_967_296;
const tag = "{oldest-windows-finding}";
const keys = { wait: `${tag}:wait`, prioritized: `${tag}:prioritized`, job: (id: string) => `${tag}:${id}` };
const redis = testRedis();

async function build(urgent: number, lessUrgent: number, nowMs: number) {
  await redis.del(keys.wait, keys.prioritized);
  const members: Array<string | number> = [];
  const stamps: Array<[string, number]> = [];
  let counter = 0;
  const V = 1_000;
  // The old priority-10 job, enqueued first (BullMQ's counter 1), ten minutes ago.
  counter += 1;
  members.push((V + 9 * 12_000) * STEP + counter, "old");
  stamps.push(["old", nowMs - 600_000]);
  for (let k = 1; k <= urgent; k += 1) {
    counter += 1;
    members.push((V + 12 * k) * STEP + counter, `p1-${k}`);
    stamps.push([`p1-${k}`, nowMs]);
  }
  for (let k = 1; k <= lessUrgent; k += 1) {
    counter += 1;
    members.push((V + 9 * 12_000 + 12 * k) * STEP + counter, `p10-${k}`);
    stamps.push([`p10-${k}`, nowMs]);
  }
  for (let i = 0; i < members.length; i += 10_000)
    await redis.zadd(keys.prioritized, ...(members.slice(i, i + 10_000) as [number, string]));
  const pipeline = redis.pipeline();
  for (const [id, stamp] of stamps) pipeline.hset(keys.job(id), "timestamp", String(stamp));
  await pipeline.exec();
}

afterAll(async () => {
  redis.disconnect();
});

describe("oldestWaitingMs on a large prioritized set", () => {
  it("finds the old job among 4,999 prioritized jobs", async () => {
    const now = Date.now();
    await build(3_000, 1_998, now);
    expect(now - ((await oldestWaitingMs(redis, keys)) ?? now)).toBeGreaterThanOrEqual(599_000);
  });
  it("finds the old job among 5,101 prioritized jobs", async () => {
    const now = Date.now();
    await build(3_000, 2_100, now);
    expect(now - ((await oldestWaitingMs(redis, keys)) ?? now)).toBeGreaterThanOrEqual(599_000);
  });
});

/** BullMQ's score in a delayed set: when the job is due (ms) × 4096 + a counter. */
const dueScore = (dueMs: number, counter: number) => dueMs * 4096 + counter;

describe("oldestWaitingMs with the delayed set", () => {
  const delayed = { ...keys, delayed: `${tag}:delayed` };

  it("counts a job parked there that has not started, not one waiting between tries", async () => {
    const now = Date.now();
    await redis.del(keys.wait, keys.prioritized, delayed.delayed);
    // Between tries (an attempt in its progress): running, not waiting, however old.
    await redis.hset(
      keys.job("retrying"),
      "timestamp",
      String(now - 900_000),
      "progress",
      '{"hop":0,"attempts":[{"model":"a"}]}',
    );
    // Parked for its tenant's max_concurrency: never started.
    await redis.hset(
      keys.job("parked"),
      "timestamp",
      String(now - 300_000),
      "progress",
      '{"hop":0,"attempts":[]}',
    );
    await redis.hset(keys.job("fresh"), "timestamp", String(now - 1_000));
    await redis.zadd(
      delayed.delayed,
      dueScore(now + 5_000, 1),
      "retrying",
      dueScore(now + 1_000, 2),
      "parked",
      dueScore(now + 2_000, 3),
      "fresh",
    );
    expect(now - ((await oldestWaitingMs(redis, delayed)) ?? now)).toBe(300_000);
    // Without the delayed set (the webhooks queue), none of them waits.
    expect(await oldestWaitingMs(redis, keys)).toBeUndefined();
  });

  it("counts a started job that is due (handed back at a shutdown, its wait over) from when it became due", async () => {
    // The audit: jobs handed back when the last worker stopped sat in the delayed set, due at once,
    // and the gauge stayed 0 (they had an attempt: "between tries"), so queue_age never fired.
    const now = Date.now();
    await redis.del(keys.wait, keys.prioritized, delayed.delayed);
    const started = '{"hop":0,"attempts":[{"model":"a","outcome":"error"}]}';
    await redis.hset(keys.job("handed-back"), "timestamp", String(now - 900_000), "progress", started);
    await redis.hset(keys.job("backing-off"), "timestamp", String(now - 950_000), "progress", started);
    await redis.zadd(
      delayed.delayed,
      dueScore(now - 60_000, 7),
      "handed-back",
      dueScore(now + 30_000, 8),
      "backing-off",
    );
    const since = (await oldestWaitingMs(redis, delayed)) ?? now;
    // Redis's clock and this one's agree to a few ms here.
    expect(now - since).toBeGreaterThanOrEqual(59_900);
    expect(now - since).toBeLessThanOrEqual(60_100);
  });

  it("finds the oldest parked job among 3,000, past the exact bound", async () => {
    const now = Date.now();
    await redis.del(keys.wait, keys.prioritized, delayed.delayed);
    const pipeline = redis.pipeline();
    for (let k = 0; k < 3_000; k += 1) {
      // The oldest parked longest, its next try latest (backoffs double): the set's end.
      pipeline.hset(keys.job(`d-${k}`), "timestamp", String(now - k * 100));
      pipeline.zadd(delayed.delayed, now + k, `d-${k}`);
    }
    await pipeline.exec();
    expect(now - ((await oldestWaitingMs(redis, delayed)) ?? now)).toBe(2_999 * 100);
  });
});
