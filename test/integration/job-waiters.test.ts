/**
 * `?wait=` is woken by the job's end, not by its timeout, now that the API reads the queue's
 * events only while someone waits (JobWaiters): the first waiter starts the reader, the last one
 * stops it, and a later waiter starts it again from the stream's end.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 400 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
};
const hello = { request: { messages: [{ role: "user", content: "Hello" }], max_tokens: 20 } };

describe("?wait= and the on-demand event reader", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ redisUrl: inject("redisUrl"), config });
  });
  afterAll(() => stack?.close());

  async function waitedFor(): Promise<number> {
    const created = await stack.request("POST", "/v1/jobs", { body: hello });
    expect(created.status).toBe(202);
    const started = Date.now();
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`);
    expect(done.body.status).toBe("succeeded");
    return Date.now() - started;
  }

  it("answers when the job ends, again after the reader stopped, and for many waiters at once", async () => {
    // The upstream takes 400 ms; a missed wake-up would hold each answer the full 20 s.
    expect(await waitedFor()).toBeLessThan(8_000);
    expect(await waitedFor()).toBeLessThan(8_000);
    const started = Date.now();
    const all = await Promise.all(Array.from({ length: 10 }, () => waitedFor()));
    expect(all.every((ms) => ms < 8_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 60_000);
});
