/**
 * A streaming job's ending (its terminal `status` and `done`) reaches an event-stream reader only
 * once the job's state says it ended: a run writes them just before BullMQ stores the end, and a
 * client that read the job on `done` was shown it still running (a black-box audit). An ending
 * whose run died before BullMQ stored it is passed over when the stream goes on.
 */
import { createKeys, QUEUE_NAMES } from "@cascade/shared";
import { Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { readEvents } from "../support/sse-client.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" } },
};
const a = { authorization: "Bearer key-a" };
const streamed = { request: { messages: [{ role: "user", content: "hi" }], max_tokens: 5, stream: true } };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a streaming job's ending on GET /v1/jobs/:id/events", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      withoutWorker: true,
      env: { A_KEYS: "key-a" },
    });
  });
  afterAll(() => stack?.close());

  /** Runs the queue's next job as `run` says, with BullMQ storing its outcome when `run` returns. */
  async function runOne(
    run: (jobId: string, append: (event: string, data: unknown) => Promise<void>) => Promise<unknown>,
  ) {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const append = (jobId: string) => async (event: string, data: unknown) => {
      await stack.redis.xadd(keys.jobEvents(jobId), "*", "event", event, "data", JSON.stringify(data));
    };
    let finished!: () => void;
    const done = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const worker = new Worker(
      QUEUE_NAMES.completions,
      async (job) => {
        try {
          return await run(job.id as string, append(job.id as string));
        } finally {
          setTimeout(finished, 100);
        }
      },
      { connection: stack.redis.duplicate() as never, prefix: keys.bullPrefix, concurrency: 1 },
    );
    return { done, close: () => worker.close() };
  }

  const outcome = (now: number) => ({
    status: "succeeded",
    result: { id: "chatcmpl-x", object: "chat.completion", choices: [] },
    model: "fast",
    provider: "sim",
    cost_usd: 0,
    attempts: [],
    started_at: Math.floor(now / 1000),
    finished_at: Math.floor(now / 1000),
  });

  it("sends the ending once the job's state says it ended, so a read on `done` sees it ended", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const id = created.body.id as string;
    const runner = await runOne(async (_jobId, append) => {
      await append("status", { status: "running" });
      await append("delta", { hop: 0, content: "hello" });
      await append("status", { status: "succeeded" });
      await append("done", { id, status: "succeeded" });
      // BullMQ stores the end only when this returns, a while after the ending was written.
      await sleep(1_000);
      return outcome(Date.now());
    });
    let readOnDone: { status: string } | undefined;
    const reading = readEvents(`${stack.url}/v1/jobs/${id}/events`, {
      headers: a,
      until: (event) => {
        if (event.event === "done")
          void stack.request("GET", `/v1/jobs/${id}`, { headers: a }).then((answer) => {
            readOnDone = answer.body;
          });
        return false;
      },
    });
    const { events } = await reading;
    await runner.done;
    await runner.close();
    await sleep(200);
    expect(events.map((event) => event.event)).toEqual(["status", "status", "delta", "status", "done"]);
    expect(readOnDone?.status).toBe("succeeded");
  });

  it("passes over an ending its run wrote but BullMQ never stored, and ends with the next run's", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const id = created.body.id as string;
    const reading = readEvents(`${stack.url}/v1/jobs/${id}/events`, { headers: a });
    const runner = await runOne(async (_jobId, append) => {
      // The run that died after writing its ending, then the run that took the job over.
      await append("status", { status: "running" });
      await append("status", { status: "succeeded" });
      await append("done", { id, status: "succeeded", note: "dead run" });
      await sleep(500);
      await append("restart", { hop: 0, reason: "network_error" });
      await append("delta", { hop: 0, content: "again" });
      await append("status", { status: "succeeded" });
      await append("done", { id, status: "succeeded", note: "live run" });
      await sleep(300);
      return outcome(Date.now());
    });
    const { events } = await reading;
    await runner.done;
    await runner.close();
    expect(events.map((event) => event.event)).toEqual([
      "status",
      "status",
      "restart",
      "delta",
      "status",
      "done",
    ]);
    expect(events.at(-1)?.data.note).toBe("live run");
  });
});
