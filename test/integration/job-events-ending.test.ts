/**
 * A streaming job's ending (its terminal `status` and `done`) reaches an event-stream reader only
 * once the job's state says it ended: a run writes them just before BullMQ stores the end, and a
 * client that read the job on `done` was shown it still running (a black-box audit). It is held
 * for at most 2 s, so a reader never waits for ever on a run whose end is not stored.
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

  it("sends an ending whose end is not stored within its wait as it is (a reader never waits for ever)", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const id = created.body.id as string;
    let appendedAt = 0;
    const runner = await runOne(async (_jobId, append) => {
      await append("status", { status: "running" });
      await append("status", { status: "succeeded" });
      await append("done", { id, status: "succeeded" });
      appendedAt = Date.now();
      // Longer than the events route holds an ending (2 s).
      await sleep(3_500);
      return outcome(Date.now());
    });
    let doneAt = 0;
    const { events } = await readEvents(`${stack.url}/v1/jobs/${id}/events`, {
      headers: a,
      until: (event) => {
        if (event.event === "done") doneAt = Date.now();
        return false;
      },
    });
    expect(events.map((event) => event.event)).toEqual(["status", "status", "status", "done"]);
    expect(doneAt - appendedAt).toBeGreaterThanOrEqual(1_500);
    expect(doneAt - appendedAt).toBeLessThan(3_400);
    await runner.done;
    await runner.close();
  });
});
