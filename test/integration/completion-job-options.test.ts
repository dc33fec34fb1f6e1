/**
 * Batch lines are ordinary jobs, and that includes BullMQ's second chances: a batch line's job
 * and a POST /v1/jobs job carry the same `attempts` and `backoff` options (read back from Redis).
 */
import { createKeys, type JobData, type JobOutcome, QUEUE_NAMES } from "@cascade/shared";
import { Job, Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
};
const messages = [{ role: "user", content: "Hello" }];

describe("completion job options", () => {
  let stack: Stack;
  let queue: Queue<JobData, JobOutcome>;

  beforeAll(async () => {
    // No worker: the jobs stay queued, as they were added.
    stack = await startStack({ redisUrl: inject("redisUrl"), config, withoutWorker: true });
    queue = new Queue(QUEUE_NAMES.completions, {
      connection: stack.redis as never,
      prefix: createKeys(stack.config.settings.CASCADE_REDIS_PREFIX).bullPrefix,
    });
  });
  afterAll(async () => {
    await queue?.close();
    await stack?.close();
  });

  async function batchLineJob(): Promise<Job<JobData, JobOutcome>> {
    const form = new FormData();
    const line = { custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { messages } };
    form.append("purpose", "batch");
    form.append("file", new Blob([`${JSON.stringify(line)}\n`]), "input.jsonl");
    const file = await (await fetch(`${stack.url}/v1/files`, { method: "POST", body: form })).json();
    const batch = await stack.request("POST", "/v1/batches", {
      body: { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    });
    expect(batch.status, JSON.stringify(batch.body)).toBe(200);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const jobs = await queue.getJobs(["prioritized", "waiting"]);
      const found = jobs.find((job) => job.data.batch?.id === batch.body.id);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("the batch line's job was not queued");
  }

  it("gives a batch line's job the same attempts and backoff as a POST /v1/jobs job", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: { request: { messages } } });
    expect(created.status).toBe(202);
    const apiJob = await Job.fromId<JobData, JobOutcome>(queue, created.body.id);
    const lineJob = await batchLineJob();

    expect(apiJob?.opts.attempts).toBeGreaterThan(1);
    expect(apiJob?.opts.backoff).toBeDefined();
    expect(lineJob.opts.attempts).toBe(apiJob?.opts.attempts);
    expect(lineJob.opts.backoff).toEqual(apiJob?.opts.backoff);
    // Priorities differ on purpose (batch lines default to 7, interactive jobs to 5). The job keeps
    // its own in its data; BullMQ's priority is its fair-share tag (docs/decisions/0019), which
    // puts the less urgent line 2 × 12,000 behind.
    expect(lineJob.data.priority).toBe(7);
    expect(apiJob?.data.priority).toBe(5);
    expect((lineJob.opts.priority ?? 0) - (apiJob?.opts.priority ?? 0)).toBeGreaterThan(2 * 12_000 - 100);
  });
});
