/**
 * DELETE /v1/jobs/:id on a queued job queues its job.cancelled webhook before the job goes: when
 * that cannot be queued (a Redis blip), nothing is cancelled and the client is told (503), so a
 * cancel answered 200 always notifies. It was queued after the job was removed, and a failure
 * there was logged and the notification lost for good (black-box audit). A job queued through the
 * API, then the API's JobStore on the same Redis with a queueing step that fails once.
 */
import { createKeys, type JobData, type JobObject, QUEUE_NAMES } from "@cascade/shared";
import { createQueue } from "@cascade/shared/bullmq";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { JobStore } from "../../packages/api/src/jobs/job-store.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    withoutWorker: true,
    env: { ACME_KEYS: "acme-key" },
    config: {
      providers: { sim: { type: "simulated" } },
      models: { fast: { provider: "sim" } },
      routes: { default: { chain: [{ model: "fast" }] } },
      tenants: { acme: { api_keys_env: "ACME_KEYS" } },
      webhooks: { allow_private_networks: true },
    },
  });
});
afterAll(() => stack?.close());

/** The API's JobStore on the stack's Redis, and its queue (closed by the caller). */
function apiJobStore() {
  const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
  const queue = createQueue<JobData>(QUEUE_NAMES.completions, {
    connection: stack.redis,
    prefix: keys.bullPrefix,
    logger: pino({ level: "silent" }),
  });
  return { keys, queue, store: new JobStore(queue as never, stack.redis, keys, 3600) };
}

describe("cancelling a queued job", () => {
  it("queues its webhook first: a failure there cancels nothing; the next try cancels and queues", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: {
        request: { messages: [{ role: "user", content: "hi" }] },
        webhook: { url: "http://127.0.0.1:9/hook" },
      },
      headers: { authorization: "Bearer acme-key" },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const { keys, queue, store } = apiJobStore();
    const failing = async () => {
      throw new Error("Connection is closed.");
    };
    await expect(store.cancel("acme", id, Date.now(), failing)).rejects.toThrow("Connection is closed.");
    // Not cancelled: the job is still queued, and no cancelled record stands in its place.
    expect(await queue.getJobState(id)).toMatch(/waiting|prioritized/);
    expect(await stack.redis.exists(keys.cancelledJob(id))).toBe(0);
    const queued: JobObject[] = [];
    const result = await store.cancel("acme", id, Date.now(), async (job) => {
      // Queued while the job is still there, its cancelled record already written.
      expect(await stack.redis.exists(keys.cancelledJob(job.id))).toBe(1);
      expect(await queue.getJobState(id)).toMatch(/waiting|prioritized/);
      queued.push(job);
    });
    expect(result?.kind).toBe("cancelled");
    expect(queued.map((job) => job.status)).toEqual(["cancelled"]);
    expect(await queue.getJobState(id)).toBe("unknown");
    await queue.close();
  });

  it("answers a second cancel racing the first that it ended, and leaves the first's record", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }] } },
      headers: { authorization: "Bearer acme-key" },
    });
    const id: string = created.body.id;
    const { queue, store } = apiJobStore();
    // The second goes on only once the first has removed the job (an SDK's retry of a slow DELETE).
    const first = store.cancel("acme", id, Date.now(), async () => {});
    const second = store.cancel("acme", id, Date.now(), async () => {
      await first;
    });
    expect((await first)?.kind).toBe("cancelled");
    expect(await second).toMatchObject({ kind: "terminal", job: { status: "cancelled" } });
    // Before, the second took the record back: the job a client was told is cancelled read 404.
    const read = await stack.request("GET", `/v1/jobs/${id}`, {
      headers: { authorization: "Bearer acme-key" },
    });
    expect(read.status).toBe(200);
    expect(read.body.status).toBe("cancelled");
    await queue.close();
  });
});
