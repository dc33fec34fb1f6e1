/**
 * Redis refusing a write for now (out of memory at maxmemory, a failover's READONLY) under a
 * running job is not the job's failure. Found by a failure-injection audit: a job accepted before
 * Redis reached its maxmemory had its admission script refused three times in 3 s, each a BullMQ
 * attempt, and ended failed without ever calling its provider. Its run now waits (500 ms,
 * doubling) and starts again from its last save, while that save knows every call it made.
 *
 * A private redis-server, whose maxmemory is lowered under a job that holds a place in line (an
 * rpm bucket of 80 a minute, burst 2: the third job waits ~0.75 s in the worker for its slot):
 * the job's admission at its slot is refused with Redis's own OOM reply. Before, the refused run
 * failed its attempt (BullMQ could not store that either, so the job sat active until its lock
 * expired, 30 s, and ran again after a stall).
 */
import { createKeys, QUEUE_NAMES } from "@cascade/shared";
import { Job, Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 5 }, limits: { rpm: 80, burst: 2 } } },
  models: { echo: { provider: "sim", price: { input_per_mtok: 1, output_per_mtok: 1 } } },
  routes: { default: { chain: [{ model: "echo" }] } },
};

let server: SpawnedRedis;
let admin: Redis;
let stack: Stack;
let queue: Queue;

beforeAll(async () => {
  server = await spawnRedisServer();
  admin = new Redis(server.url);
  // A run retries for at most half a lock duration: room for the second and a loaded machine.
  stack = await startStack({
    redisUrl: server.url,
    config,
    concurrency: 5,
    env: { WORKER_LOCK_DURATION_MS: "20000" },
  });
  queue = new Queue(QUEUE_NAMES.completions, {
    connection: admin as never,
    prefix: createKeys(stack.config.settings.CASCADE_REDIS_PREFIX).bullPrefix,
  });
});
afterAll(async () => {
  await admin?.config("SET", "maxmemory", "0").catch(() => {});
  await queue?.close();
  await stack?.close();
  admin?.disconnect();
  await server?.stop();
});

describe("a run whose Redis write is refused for now", () => {
  it("waits and starts again once Redis takes writes, instead of failing its attempt", async () => {
    const ids: string[] = [];
    for (let n = 0; n < 3; n += 1) {
      const created = await stack.request("POST", "/v1/jobs", {
        body: { request: { messages: [{ role: "user", content: `job ${n}` }] } },
      });
      expect(created.status).toBe(202);
      ids.push(created.body.id);
    }
    // Two jobs take the bucket's burst and finish; the third waits in the worker for its slot.
    const states = async () => Promise.all(ids.map(async (id) => (await Job.fromId(queue, id))?.getState()));
    for (let tries = 0; tries < 200; tries += 1) {
      if ((await states()).filter((state) => state === "completed").length >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const now = await states();
    expect(now.filter((state) => state === "completed")).toHaveLength(2);
    const waiting = ids[now.findIndex((state) => state !== "completed")] as string;
    expect(await (await Job.fromId(queue, waiting))?.getState()).toBe("active");

    await admin.config("SET", "maxmemory", "1");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await (await Job.fromId(queue, waiting))?.getState()).toBe("active");
    await admin.config("SET", "maxmemory", "0");
    const started = Date.now();
    const done = await stack.request("GET", `/v1/jobs/${waiting}?wait=20`);
    expect(done.body).toMatchObject({ status: "succeeded", model: "echo" });
    // Within the run's backoff of Redis's return, not after a lock expiry and a stall (30 s).
    expect(Date.now() - started).toBeLessThan(10_000);
    // One run, the one that succeeded: no failed attempt in BullMQ's record of the job.
    const after = await Job.fromId(queue, waiting);
    expect(after?.stacktrace ?? []).toEqual([]);
    expect(after?.attemptsMade).toBe(1);
  });
});
