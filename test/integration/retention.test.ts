import { createKeys } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

/**
 * Finished jobs, their event streams and cancelled-job records are removed after their retention
 * times (JOB_RETENTION_S, default 7 days; EVENTS_RETENTION_S, default the job's retention), by
 * BullMQ's own removeOnComplete/removeOnFail ages and by Redis key expiry.
 */
describe("retention", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { JOB_RETENTION_S: "1", EVENTS_RETENTION_S: "2" },
      config: {
        providers: { sim: { type: "simulated" } },
        models: { echo: { provider: "sim" } },
        routes: { default: { chain: [{ model: "echo" }] } },
      },
    });
  });
  afterAll(() => stack?.close());

  const body = (stream = false) => ({ request: { messages: [{ role: "user", content: "hi" }], stream } });

  it("removes finished jobs after JOB_RETENTION_S and event streams after EVENTS_RETENTION_S", async () => {
    const first = await stack.request("POST", "/v1/jobs", { body: body(true) });
    expect((await stack.request("GET", `/v1/jobs/${first.body.id}?wait=10`)).body.status).toBe("succeeded");
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const ttl = await stack.redis.pttl(keys.jobEvents(first.body.id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2000);

    await new Promise((resolve) => setTimeout(resolve, 2200));
    // BullMQ prunes old finished jobs when the next one finishes.
    const second = await stack.request("POST", "/v1/jobs", { body: body() });
    expect((await stack.request("GET", `/v1/jobs/${second.body.id}?wait=10`)).body.status).toBe("succeeded");
    expect((await stack.request("GET", `/v1/jobs/${first.body.id}`)).status).toBe(404);
    expect(await stack.redis.exists(keys.jobEvents(first.body.id))).toBe(0);
  });
});

describe("retention of event streams by default", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      // Longer than the 24 h event streams used to be kept whatever the jobs' retention.
      env: { JOB_RETENTION_S: String(3 * 86_400) },
      config: {
        providers: { sim: { type: "simulated" } },
        models: { echo: { provider: "sim" } },
        routes: { default: { chain: [{ model: "echo" }] } },
      },
    });
  });
  afterAll(() => stack?.close());

  it("keeps a streaming job's events replayable as long as the job is kept (the contract)", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }], stream: true } },
    });
    expect((await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`)).body.status).toBe("succeeded");
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const ttl = await stack.redis.ttl(keys.jobEvents(created.body.id));
    expect(ttl).toBeGreaterThan(3 * 86_400 - 60);
    expect(ttl).toBeLessThanOrEqual(3 * 86_400);
  });
});

describe("retention of cancelled jobs", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { JOB_RETENTION_S: "1" },
      withoutWorker: true,
      config: {
        providers: { sim: { type: "simulated" } },
        models: { echo: { provider: "sim" } },
        routes: { default: { chain: [{ model: "echo" }] } },
      },
    });
  });
  afterAll(() => stack?.close());

  it("keeps the record of a job cancelled while queued for JOB_RETENTION_S", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }] } },
    });
    expect((await stack.request("DELETE", `/v1/jobs/${created.body.id}`)).status).toBe(200);
    expect((await stack.request("GET", `/v1/jobs/${created.body.id}`)).body.status).toBe("cancelled");
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect((await stack.request("GET", `/v1/jobs/${created.body.id}`)).status).toBe(404);
  });
});
