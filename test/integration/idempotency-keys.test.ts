/**
 * Idempotency-Key corner cases: a retry whose body lists the same fields in another order is the
 * same request; a replay whose job went in and is gone is refused, never run again; and of several
 * retries racing to reuse a key whose first request never said its job went in, exactly one
 * enqueues a job.
 */
import { createKeys, QUEUE_NAMES, sha256Hex } from "@cascade/shared";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { IdempotencyKeys } from "../../packages/api/src/jobs/idempotency.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { acme: { api_keys_env: "ACME_KEYS" } },
};
const acme = { authorization: "Bearer acme-key" };

describe("Idempotency-Key", () => {
  let stack: Stack;
  let queue: Queue;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      withoutWorker: true,
      env: { ACME_KEYS: "acme-key" },
    });
    queue = new Queue(QUEUE_NAMES.completions, {
      connection: stack.redis as never,
      prefix: createKeys(stack.config.settings.CASCADE_REDIS_PREFIX).bullPrefix,
    });
  });
  afterAll(async () => {
    await queue?.close();
    await stack?.close();
  });

  it("compares bodies as canonical JSON: key order does not make a different request", async () => {
    const headers = { ...acme, "idempotency-key": `order-${Date.now()}` };
    const first = await stack.request("POST", "/v1/jobs", {
      body: '{"metadata":{"a":"1","b":"2"},"request":{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}}',
      headers,
    });
    expect(first.status).toBe(202);
    const reordered = await stack.request("POST", "/v1/jobs", {
      body: '{"request":{"messages":[{"content":"x","role":"user"}],"max_tokens":5},"metadata":{"b":"2","a":"1"}}',
      headers,
    });
    expect(reordered.status).toBe(200);
    expect(reordered.body.id).toBe(first.body.id);
    // A real difference is still refused.
    const changed = await stack.request("POST", "/v1/jobs", {
      body: '{"request":{"messages":[{"content":"y","role":"user"}],"max_tokens":5},"metadata":{"b":"2","a":"1"}}',
      headers,
    });
    expect(changed.status).toBe(422);
  });

  it("refuses a replay whose job went in and is gone (a retention under the key's 24 h, or removed): never a second job", async () => {
    const headers = { ...acme, "idempotency-key": `removed-${Date.now()}` };
    const body = { request: { messages: [{ role: "user", content: "removed soon" }] } };
    const first = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(first.status).toBe(202);
    // The record says the job went in (written just after the answer): wait for it.
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const recordKey = keys.idempotency("acme", sha256Hex(headers["idempotency-key"]));
    const deadline = Date.now() + 5_000;
    while (!JSON.parse((await stack.redis.get(recordKey)) ?? "{}").added && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    await queue.remove(first.body.id);
    const before = Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0);
    // The key is kept 24 h: a replay within them never runs (and bills) the request again. Its
    // job cannot be answered either, so the client hears why, and that a new key runs it again
    // (a black-box probe found a second job, 202, after JOB_RETENTION_S=3). Not "still being
    // processed" (409, Retry-After) for the rest of the enqueue window either.
    for (let replay = 0; replay < 2; replay++) {
      const again = await stack.request("POST", "/v1/jobs", { body, headers });
      expect(again.status).toBe(422);
      expect(again.body.error).toMatchObject({ type: "idempotency_error", param: "Idempotency-Key" });
      expect(again.body.error.message).toContain(first.body.id);
      expect(again.body.error.message).toMatch(/new key/);
    }
    const after = Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0);
    expect(after).toBe(before);
  });

  it("enqueues a retry whose first request's add never landed (Redis cut it off), under the reserved job id, instead of 409 for the rest of the window", async () => {
    const idempotencyKey = `cut-${Date.now()}`;
    const headers = { ...acme, "idempotency-key": idempotencyKey };
    const body = { request: { messages: [{ role: "user", content: "cut off" }] } };
    // What a first request leaves when Redis freezes under it: its reservation ran (late), its
    // add never did, and it answered 503 "may still take effect, retry with the same key".
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const recordKey = keys.idempotency("acme", sha256Hex(idempotencyKey));
    const reservedId = "job_cutoffreservation0000";
    const first = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(first.status).toBe(202);
    await queue.remove(first.body.id);
    const record = JSON.parse((await stack.redis.get(recordKey)) ?? "{}");
    await stack.redis.set(
      recordKey,
      JSON.stringify({ job_id: reservedId, body_sha256: record.body_sha256, at: Date.now() - 8_000 }),
      "KEEPTTL",
    );
    const retry = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(retry.status).toBe(202);
    expect(retry.body.id).toBe(reservedId);
    // The first request's add, were it to land now after all, is the same job (BullMQ's duplicate).
    const before = Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0);
    const late = await queue.add("completion", { late: true }, { jobId: reservedId });
    expect(late.id).toBe(reservedId);
    expect(Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0)).toBe(before);
    const replay = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(reservedId);
    // A request that fails after this retry's add (both hold the reserved id) does not free the
    // key of the job in the queue, whether or not the record says it went in yet.
    const cutOff = JSON.stringify({
      job_id: reservedId,
      body_sha256: record.body_sha256,
      at: Date.now() - 8_000,
    });
    await stack.redis.set(recordKey, cutOff, "KEEPTTL");
    const idempotency = new IdempotencyKeys(stack.redis, keys);
    await idempotency.release("acme", idempotencyKey, reservedId);
    expect(await stack.redis.get(recordKey)).toBe(cutOff);
    // A reservation just made (its request may still be adding) is still told to wait a moment.
    await queue.remove(reservedId);
    await stack.redis.set(
      recordKey,
      JSON.stringify({ job_id: reservedId, body_sha256: record.body_sha256, at: Date.now() }),
      "KEEPTTL",
    );
    const early = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(early.status).toBe(409);
  });

  it("lets exactly one of concurrent retries reuse a key whose job expired", async () => {
    const idempotencyKey = `expired-${Date.now()}`;
    const headers = { ...acme, "idempotency-key": idempotencyKey };
    const body = { request: { messages: [{ role: "user", content: "once" }] } };
    const first = await stack.request("POST", "/v1/jobs", { body, headers });
    expect(first.status).toBe(202);
    // A reservation long past the enqueue window whose record never said its job went in (its
    // request was cut off before the add, or the note of the add was lost), and no job: the key
    // is taken over, by one of the retries.
    await queue.remove(first.body.id);
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const recordKey = keys.idempotency("acme", sha256Hex(idempotencyKey));
    const { added: _added, ...record } = JSON.parse((await stack.redis.get(recordKey)) ?? "{}");
    await stack.redis.set(recordKey, JSON.stringify({ ...record, at: Date.now() - 3_600_000 }), "KEEPTTL");
    const before = Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0);

    const responses = await Promise.all(
      Array.from({ length: 12 }, () => stack.request("POST", "/v1/jobs", { body, headers })),
    );
    const created = responses.filter((response) => response.status === 202);
    expect(created).toHaveLength(1);
    const ids = new Set(
      responses.filter((response) => response.status < 300).map((response) => response.body.id),
    );
    expect(ids.size).toBe(1);
    expect(ids.has(first.body.id)).toBe(false);
    for (const response of responses) expect([200, 202, 409]).toContain(response.status);
    const after = Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0);
    expect(after - before).toBe(1);
  });
});
