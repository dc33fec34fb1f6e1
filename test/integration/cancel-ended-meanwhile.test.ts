/**
 * DELETE /v1/jobs/:id on a running job whose run ends while the cancel is asked: the run had its
 * answer and recorded it (a cancel that comes after the call answered cannot take back a paid
 * result), so the job ended `succeeded`, but the client was told 202, a cancel under way that
 * never came (black-box audit: 4 of 30 jobs deleted 0–90 ms into a 500 ms call). The store reads
 * the job again after asking: one that ended meanwhile is answered as ended (409 at the route).
 * Here the API's JobStore on the stack's Redis, its job taken by a bare BullMQ worker and
 * finished at the moment the cancel is published.
 */
import { createKeys, type JobData, type JobOutcome, QUEUE_NAMES } from "@cascade/shared";
import { createQueue } from "@cascade/shared/bullmq";
import { Worker } from "bullmq";
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
    },
  });
});
afterAll(() => stack?.close());

describe("cancelling a running job that ends meanwhile", () => {
  it("is answered as ended, not as a cancel under way; one the worker cancels meanwhile is answered as cancelled", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const queue = createQueue<JobData>(QUEUE_NAMES.completions, {
      connection: stack.redis,
      prefix: keys.bullPrefix,
      logger: pino({ level: "silent" }),
    });
    const worker = new Worker(QUEUE_NAMES.completions, null, {
      connection: stack.redis.duplicate(),
      prefix: keys.bullPrefix,
    });
    const enqueue = async () => {
      const created = await stack.request("POST", "/v1/jobs", {
        body: { request: { messages: [{ role: "user", content: "hi" }] } },
        headers: { authorization: "Bearer acme-key" },
      });
      expect(created.status).toBe(202);
      return created.body.id as string;
    };
    /** Takes the next job (as a worker would: it is running now) and the outcome its run records. */
    const take = async (status: JobOutcome["status"]) => {
      const job = await worker.getNextJob("run-1");
      if (!job) throw new Error("no job to take");
      const now = Date.now();
      const outcome: JobOutcome = {
        status,
        model: "fast",
        provider: "sim",
        cost_usd: 0,
        attempts: [],
        started_at: Math.floor(now / 1000),
        finished_at: Math.floor(now / 1000),
        ...(status === "succeeded"
          ? { result: { object: "chat.completion", choices: [] } }
          : { error: { type: "cancelled", message: "cancelled" } }),
      };
      return { job, outcome };
    };
    /** The store, whose publish of the cancel lets `meanwhile` run first (the run ending then). */
    const storeEnding = (meanwhile: () => Promise<unknown>) => {
      const redis = new Proxy(stack.redis, {
        get(target, property, receiver) {
          if (property === "publish")
            return async (...args: [string, string]) => {
              await meanwhile();
              return target.publish(...args);
            };
          const value = Reflect.get(target, property, receiver);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      return new JobStore(queue as never, redis as never, keys, 3600);
    };
    try {
      const succeededId = await enqueue();
      const ran = await take("succeeded");
      expect(ran.job.id).toBe(succeededId);
      const succeeded = storeEnding(() => ran.job.moveToCompleted(ran.outcome, "run-1", false));
      const answer = await succeeded.cancel("acme", succeededId, Date.now(), async () => {});
      expect(answer?.kind).toBe("terminal");
      expect(answer?.job.status).toBe("succeeded");
      expect(await stack.redis.exists(keys.cancelRequest(succeededId))).toBe(0);

      const cancelledId = await enqueue();
      const cancelledRun = await take("cancelled");
      const cancelled = storeEnding(() =>
        cancelledRun.job.moveToCompleted(cancelledRun.outcome, "run-1", false),
      );
      const told = await cancelled.cancel("acme", cancelledId, Date.now(), async () => {});
      expect(told?.kind).toBe("requested");
      expect(told?.job.status).toBe("cancelled");
    } finally {
      await worker.close();
      await queue.close();
    }
  });
});
