/**
 * Redis refusing a write for now (out of memory at maxmemory, a failover's READONLY) under a
 * running job is not the job's failure. Found by a failure-injection audit: a job accepted before
 * Redis reached its maxmemory had its admission script refused three times in 3 s, each a BullMQ
 * attempt, and ended failed (job.failed webhook sent) without ever calling its provider, while the
 * condition lasted 15 s. The run now waits (500 ms, doubling) and starts again from its last save.
 * The worker runs in-process here so its admissions can be refused on cue: Redis's own OOM reply.
 */

import { Resilience } from "@cascade/engine";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 5 } } },
  models: { echo: { provider: "sim", price: { input_per_mtok: 1, output_per_mtok: 1 } } },
  routes: { default: { chain: [{ model: "echo" }] } },
};

let stack: Stack;
const original = Resilience.prototype.admitOrLineUp;
let refusalsLeft = 0;

beforeAll(async () => {
  Resilience.prototype.admitOrLineUp = function (this: Resilience, ...args) {
    if (refusalsLeft > 0) {
      refusalsLeft -= 1;
      const error = new Error("OOM command not allowed when used memory > 'maxmemory'.");
      error.name = "ReplyError";
      return Promise.reject(error);
    }
    return original.apply(this, args);
  } as typeof original;
  stack = await startStack({ redisUrl: inject("redisUrl"), config });
});
afterAll(async () => {
  Resilience.prototype.admitOrLineUp = original;
  await stack?.close();
});

describe("a run whose Redis write is refused for now", () => {
  it("waits and starts again instead of spending the job's attempts", async () => {
    refusalsLeft = 3;
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }] } },
    });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`);
    expect(refusalsLeft).toBe(0);
    expect(done.body).toMatchObject({ status: "succeeded", model: "echo" });
    expect(done.body.attempts).toHaveLength(1);
  });
});
