/**
 * The failed-jobs sweep (ADR 0024) against real Redis and BullMQ: jobs failed for good with no
 * webhook queued and no count are told once each, even by two processes sweeping at once; jobs
 * already told (webhook queued, or delivered and its BullMQ job gone, or counted) are not told
 * again, nor is one older than the retention (its traces may have expired); a thousand failures
 * at one millisecond (one stalled check) are walked across page boundaries without a gap; and
 * one pass looks at no more than 1,000 failures.
 */
import {
  type CompletionQueue,
  createKeys,
  type FinishedRequest,
  type JobData,
  loadConfig,
  QUEUE_NAMES,
  type RedisClient,
  systemClock,
  type WebhookQueue,
} from "@cascade/shared";
import { Queue, UnrecoverableError, Worker } from "bullmq";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createFailedJobsSweep,
  type FailedJobsSweep,
} from "../../packages/worker/src/webhooks/failed-jobs-sweep.js";
import { testRedis } from "../support/redis-clients.js";

const JOBS = 1_050;
const prefix = `itfailedsweep${process.pid}${Date.now()}`;
const keys = createKeys(prefix);
const config = loadConfig({
  CASCADE_REDIS_PREFIX: prefix,
  REDIS_URL: "redis://127.0.0.1:6379",
});
const logger = pino({ level: "silent" });

let connections: RedisClient[] = [];
let completions: CompletionQueue;
let webhooks: WebhookQueue;
const counted: FinishedRequest[] = [];

function jobData(index: number): JobData {
  const now = Date.now();
  return {
    v: 1,
    tenant: "default",
    request: { messages: [{ role: "user", content: `job ${index}` }] },
    route: "default",
    chain: [{ model: "fast" }],
    policy: { on_content_filter: "fallback", on_bad_request: "fail", on_missing_vision: "skip" },
    webhook: { url: "https://receiver.example/hook" },
    priority: 0,
    created_at: Math.floor(now / 1000),
    deadline_at: now + 60_000,
  } as JobData;
}

function sweeper(name: string): FailedJobsSweep {
  const connection = testRedis(undefined, { maxRetriesPerRequest: null });
  connections.push(connection);
  return createFailedJobsSweep({
    config,
    connection,
    keys,
    completions,
    webhooks,
    logger: logger.child({ sweeper: name }),
    clock: systemClock,
    observer: { finished: (request) => counted.push(request) },
    intervalMs: 1_000,
    settleMs: 0,
    token: name,
  });
}

const ids = Array.from({ length: JOBS }, (_, index) => `job_t${String(index).padStart(5, "0")}`);
const suffix = (jobId: string) => jobId.replace(/^job_/, "");
const OLD = ids[42] as string;

beforeAll(async () => {
  const connection = testRedis(undefined, { maxRetriesPerRequest: null });
  connections.push(connection);
  completions = new Queue(QUEUE_NAMES.completions, {
    connection,
    prefix: keys.bullPrefix,
  }) as CompletionQueue;
  webhooks = new Queue(QUEUE_NAMES.webhooks, { connection, prefix: keys.bullPrefix }) as WebhookQueue;
  await completions.addBulk(
    ids.map((jobId, index) => ({ name: "completion", data: jobData(index), opts: { jobId } })),
  );
  // Failed for good by a worker that tells nobody (it dies right after moveToFailed).
  const bare = new Worker(
    QUEUE_NAMES.completions,
    async () => {
      throw new UnrecoverableError("job stalled more than allowable limit");
    },
    { connection, prefix: keys.bullPrefix, concurrency: 50 },
  );
  const deadline = Date.now() + 30_000;
  while ((await completions.getFailedCount()) < JOBS && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await bare.close();
  expect(await completions.getFailedCount()).toBe(JOBS);
  // One stalled check's worth of failures: every one at the same millisecond.
  const at = Date.now() - 5_000;
  await connection.zadd(completions.toKey("failed"), ...ids.flatMap((jobId) => [at, jobId]));
  await connection.set(keys.failedSweepCursor, `${at - 1}:`);
  // One failure ended before the retention (all workers down that long): its traces may be gone.
  await connection.hset(completions.toKey(OLD), "finishedOn", String(Date.now() - 8 * 86_400_000));
}, 60_000);

afterAll(async () => {
  await completions?.close();
  await webhooks?.close();
  for (const connection of connections) connection.disconnect();
  connections = [];
});

describe("failed-jobs sweep", () => {
  it("tells each untold failure once, even with two sweepers at once, and skips the told", async () => {
    const [alreadyQueued, delivered, alreadyCounted] = [ids[3], ids[500], ids[1_000]] as string[];
    // Told in-process: its webhook is queued (same delivery id the sweep would use).
    await webhooks.add("webhook", {} as never, { jobId: `whd_${suffix(alreadyQueued)}` });
    // Delivered, and its BullMQ job removed: only its record remains.
    await connections[0]?.hset(
      keys.webhookDelivery(`whd_${suffix(delivered)}`),
      "id",
      "x",
      "status",
      "delivered",
    );
    const a = sweeper("a");
    const b = sweeper("b");
    expect(await a.claimCount(alreadyCounted)).toBe(true);

    const passes: Array<{ seen: number; queued: number; counted: number }> = [];
    for (let round = 0; round < 6; round += 1) {
      // Each pass takes the lease; dropping it between lets both sweep at once, as when a
      // sweeper's pass outlives its lease.
      const results = await Promise.all([
        a.pass(),
        (async () => {
          await connections[0]?.del(keys.failedSweepLease);
          return b.pass();
        })(),
      ]);
      await connections[0]?.del(keys.failedSweepLease);
      for (const result of results) if (result) passes.push(result);
    }
    for (const result of passes) expect(result.seen).toBeLessThanOrEqual(1_000);
    expect(passes.reduce((sum, result) => sum + result.seen, 0)).toBeGreaterThanOrEqual(JOBS);

    const deliveries = await webhooks.getJobs(["waiting", "prioritized", "delayed", "active"], 0, -1);
    const deliveryIds = deliveries.map((job) => job.id as string);
    expect(new Set(deliveryIds).size).toBe(deliveryIds.length);
    const expected = ids
      .filter((jobId) => jobId !== delivered && jobId !== OLD)
      .map((jobId) => `whd_${suffix(jobId)}`);
    expect(deliveryIds.sort()).toEqual(expected.sort());
    // Overlapping passes may both add a missing delivery: BullMQ keeps one (same job id).
    expect(passes.reduce((sum, result) => sum + result.queued, 0)).toBeGreaterThanOrEqual(JOBS - 3);
    // The sweep's deliveries say job.failed, as a worker's would.
    const one = deliveries.find((job) => job.id === `whd_${suffix(ids[7] as string)}`);
    expect(one?.data).toMatchObject({
      event_type: "job.failed",
      job_id: ids[7],
      webhook_id: `msg_${suffix(ids[7] as string)}`,
    });

    expect(counted).toHaveLength(JOBS - 2);
    expect(counted.every((request) => request.status === "failed" && request.route === "default")).toBe(true);
    expect(passes.reduce((sum, result) => sum + result.counted, 0)).toBe(JOBS - 2);
    const cursor = String(await connections[0]?.get(keys.failedSweepCursor));
    expect(cursor.endsWith(`:${[...ids].sort().at(-1)}`)).toBe(true);

    // Nothing is left to tell: a later pass looks at nothing new.
    await connections[0]?.del(keys.failedSweepLease);
    expect(await a.pass()).toEqual({ seen: 0, queued: 0, counted: 0 });
  }, 60_000);

  it("one process sweeps per interval: the lease holder's pass, the others' none", async () => {
    const a = sweeper("c");
    const b = sweeper("d");
    await connections[0]?.del(keys.failedSweepLease);
    const results = await Promise.all([a.pass(), b.pass()]);
    expect(results.filter((result) => result !== undefined)).toHaveLength(1);
  });
});
