/**
 * A job BullMQ fails for good (stalled more than maxStalledCount, or out of attempts) is told to
 * its webhook and counted by the `failed` event of the worker process that failed it. That event
 * is in-process: a worker SIGKILLed between BullMQ's moveToFailed and its enqueue left the job
 * failed with no webhook, ever, and uncounted. The kill window is one round trip, so the test
 * builds that state from outside, exactly: with no Cascade worker running, a bare BullMQ worker
 * (a process that dies right after moveToFailed, or whose enqueue gave up) takes the job that
 * BullMQ's stalled check marked ("job stalled more than allowable limit", written as the job's
 * deferred failure after the 11th stall) and fails it. And a worker that lives but whose enqueue
 * gives up (the webhook queue refusing adds for the notifier's ~15 s). The failed-jobs sweep
 * (ADR 0024) tells both, once. Real processes, real Redis, a receiver.
 */
import type { RedisClient } from "@cascade/shared";
import { Queue, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  type CascadeProcess,
  killAllCascadeProcesses,
  makeTempDir,
  startApi,
  startWorker,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { testRedis } from "../support/redis-clients.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";
import {
  chatRequest,
  FAKE_KEY_VALUE,
  fakeConfig,
  http,
  type Json,
  postJob,
  sleep,
  waitForTerminal,
} from "./helpers.js";

const LOCK_MS = 2_000;
/** The sweep looks at failures two lock durations old, every lock duration: a margin on top. */
const RECOVERY_BOUND_MS = 4 * LOCK_MS + 12_000;
const STALLED_OUT = "job stalled more than allowable limit";

let fake: FakeOpenAI;
let sink: WebhookSink;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;
let tag: string;
let connection: RedisClient;
let webhookQueue: Queue;
const workers: CascadeProcess[] = [];

beforeAll(async () => {
  [fake, sink] = await Promise.all([startFakeOpenAI(), startWebhookSink()]);
  dir = makeTempDir();
  const prefix = uniquePrefix("failedhook");
  tag = `{${prefix}}`;
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: prefix,
    CASCADE_CONFIG: dir.write("cascade.json", {
      ...fakeConfig(fake.url),
      webhooks: { allow_private_networks: true, max_attempts: 3, retry_schedule_ms: [200] },
    }),
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: "info",
    WORKER_LOCK_DURATION_MS: String(LOCK_MS),
  };
  api = await startApi({ env });
  connection = testRedis(undefined, { maxRetriesPerRequest: null });
  webhookQueue = new Queue("webhooks", { connection, prefix: tag });
  // A cluster that has run workers before: the sweep's first pass ever starts its cursor at that
  // moment (failures from before it are not looked at), so let one worker make it, then stop.
  const first = await startWorker({ name: "worker-0", env });
  const deadline = Date.now() + 10_000;
  while (!(await connection.exists(`${tag}:failed-sweep:cursor`)) && Date.now() < deadline) await sleep(100);
  await first.stop(5_000);
});

afterAll(async () => {
  await webhookQueue?.close();
  connection?.disconnect();
  await killAllCascadeProcesses();
  await Promise.all([fake?.close(), sink?.close()]);
  dir?.cleanup();
});

/** Queues a job with a webhook while no Cascade worker runs, marked stalled-out as BullMQ marks it. */
async function stalledOutJob(content: string): Promise<string> {
  const created = await postJob(api.url, { request: chatRequest(content), webhook: { url: sink.url } });
  expect(created.status).toBe(202);
  const jobId: string = created.body.id;
  await connection.hset(`${tag}:completions:${jobId}`, "defa", STALLED_OUT);
  return jobId;
}

/** A worker that fails the job as BullMQ does (moveToFailed) and then dies before telling anyone. */
async function failWithoutNotifying(jobId: string): Promise<Json> {
  const bare = new Worker(
    "completions",
    async () => {
      throw new Error("the processor of a stalled-out job is never called");
    },
    { connection, prefix: tag, lockDuration: LOCK_MS },
  );
  try {
    return await waitForTerminal(api.url, jobId, 15_000);
  } finally {
    await bare.close(true);
  }
}

async function failedCount(): Promise<number> {
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const usage = await http(api.url, "GET", `/v1/usage?start=${yesterday}&end=${today}`);
  return Number(usage.body.routes?.default?.failed ?? 0);
}

async function deliveriesOf(jobId: string): Promise<Json[]> {
  const deliveries = await http(api.url, "GET", "/v1/webhook-deliveries");
  return deliveries.body.data.filter((delivery: Json) => delivery.job_id === jobId);
}

const requestsFor = (jobId: string) =>
  sink.requests.filter((request) => JSON.parse(request.body).data?.id === jobId);

describe("a job failed for good whose worker died before queueing its webhook", () => {
  it("gets its job.failed webhook once, and is counted once, from a worker started later", async () => {
    const jobId = await stalledOutJob("stalled out, its worker gone");
    const job = await failWithoutNotifying(jobId);
    expect(job.status).toBe("failed");
    expect(sink.requests).toHaveLength(0);

    const worker = await startWorker({ name: "worker-A", env });
    workers.push(worker);
    const startedAt = Date.now();
    await sink.waitForRequests(1, RECOVERY_BOUND_MS).catch((error: Error) => {
      throw new Error(
        `${error.message}: no job.failed webhook within ${RECOVERY_BOUND_MS} ms\n${worker.describe()}`,
      );
    });
    console.log(`lost job.failed webhook delivered ${Date.now() - startedAt} ms after a worker started`);
    const [request] = requestsFor(jobId);
    const event = JSON.parse(request?.body ?? "{}");
    expect(event.type).toBe("job.failed");
    expect(event.data).toEqual(await waitForTerminal(api.url, jobId, 1_000));
    expect(request?.headers["webhook-id"]).toBe(`msg_${jobId.replace(/^job_/, "")}`);
    await expect.poll(failedCount, { timeout: 5_000 }).toBe(1);

    // Later sweeps find the delivery and the count: nothing is sent or counted twice.
    await sleep(3 * LOCK_MS + 1_000);
    expect(requestsFor(jobId)).toHaveLength(1);
    expect(await deliveriesOf(jobId)).toEqual([
      expect.objectContaining({ status: "delivered", attempts: 1 }),
    ]);
    expect(await failedCount()).toBe(1);
  }, 60_000);

  it("a failure told in-process is not told or counted again, even once its delivery left the queue", async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop(5_000)));
    const jobId = await stalledOutJob("stalled out, its worker alive");
    const before = sink.requests.length;
    const countedBefore = await failedCount();
    // A Cascade worker takes the marked job and fails it itself: webhook and count in-process.
    workers.push(await startWorker({ name: "worker-B", env }));
    await sink.waitForRequests(before + 1, 15_000);
    expect(JSON.parse(requestsFor(jobId)[0]?.body ?? "{}").type).toBe("job.failed");
    await expect.poll(failedCount, { timeout: 5_000 }).toBe(countedBefore + 1);
    await expect
      .poll(async () => (await deliveriesOf(jobId))[0]?.status, { timeout: 5_000 })
      .toBe("delivered");

    // The delivered webhook's BullMQ job is removed (as retention removes it): its record remains.
    expect(await webhookQueue.remove(`whd_${jobId.replace(/^job_/, "")}`)).toBe(1);
    await sleep(4 * LOCK_MS + 3_000);
    // The sweep has passed this failure (its cursor is at or beyond it) and sent nothing.
    const failedAt = Number(await connection.zscore(`${tag}:completions:failed`, jobId));
    const cursor = String(await connection.get(`${tag}:failed-sweep:cursor`));
    expect(Number(cursor.split(":")[0])).toBeGreaterThanOrEqual(failedAt);
    expect(requestsFor(jobId)).toHaveLength(1);
    expect(await failedCount()).toBe(countedBefore + 1);
  }, 60_000);

  it("a worker alive whose enqueue gave up: the sweep queues the webhook once Redis takes it", async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop(5_000)));
    const jobId = await stalledOutJob("stalled out, its enqueue refused");
    const countedBefore = await failedCount();
    // The webhook queue refuses every add (its meta hash is now a string: WRONGTYPE in BullMQ's
    // add script) until it is put back.
    const metaKey = `${tag}:webhooks:meta`;
    const meta = await connection.hgetall(metaKey);
    await connection.del(metaKey);
    await connection.set(metaKey, "broken");
    try {
      const worker = await startWorker({ name: "worker-C", env });
      workers.push(worker);
      // The notifier tries for ~15 s, then gives up: before the sweep, that webhook was lost.
      await worker.waitForLog(
        (log) => log.msg === "could not notify a failed job" && log.job_id === jobId,
        30_000,
      );
    } finally {
      await connection.del(metaKey);
      if (Object.keys(meta).length > 0) await connection.hset(metaKey, meta);
    }
    const repairedAt = Date.now();
    await expect.poll(() => requestsFor(jobId).length, { timeout: RECOVERY_BOUND_MS, interval: 200 }).toBe(1);
    console.log(
      `refused job.failed webhook delivered ${Date.now() - repairedAt} ms after the queue took adds again`,
    );
    expect(JSON.parse(requestsFor(jobId)[0]?.body ?? "{}")).toMatchObject({
      type: "job.failed",
      data: await waitForTerminal(api.url, jobId, 1_000),
    });
    // Counted once, by the worker that failed it (its claim went through; only the add failed).
    await expect.poll(failedCount, { timeout: 5_000 }).toBe(countedBefore + 1);
    await sleep(3 * LOCK_MS);
    expect(requestsFor(jobId)).toHaveLength(1);
    expect(await failedCount()).toBe(countedBefore + 1);
  }, 90_000);
});
