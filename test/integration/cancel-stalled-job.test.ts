/**
 * DELETE /v1/jobs/:id of a job waiting in line after its run stalled (its worker died with a call
 * in flight): the API removes it itself, and the call that run left is in the cancelled job's
 * attempts and cost, as a run taking the job over would have put it (ADR 0033). The job here had
 * saved progress already (a failed attempt before the call): the first cut changed that progress
 * in place and looked for a new object, so the answer had the saved attempt only. The stall is
 * set as BullMQ records it (the job hash's `stc`), the lost call as a recovery records it.
 */
import { createKeys, type JobData, QUEUE_NAMES } from "@cascade/shared";
import { createQueue } from "@cascade/shared/bullmq";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const ACME = { authorization: "Bearer acme-key" };
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

describe("cancelling a job whose run stalled with a call in flight", () => {
  it("answers the cancelled job with its saved attempts and the lost call, at its estimate", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const queue = createQueue<JobData>(QUEUE_NAMES.completions, {
      connection: stack.redis,
      prefix: keys.bullPrefix,
      logger: pino({ level: "silent" }),
    });
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }] } },
      headers: ACME,
    });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    const saved = {
      model: "fast",
      provider: "sim",
      outcome: "error",
      reason: "server_error",
      http_status: 500,
      duration_ms: 12,
      started_at: Math.floor(Date.now() / 1000) - 5,
    };
    const progress = { hop: 0, tries: 1, attempts: [saved], cost_usd: 0.01, started_at: saved.started_at };
    await stack.redis.hset(queue.toKey(id), "progress", JSON.stringify(progress), "stc", "1");
    const lost = {
      u: "usage-key",
      f: ["total"],
      t: 60,
      c: 0.05,
      n: "acme",
      r: "default",
      fm: "fast",
      m: "fast",
      p: "sim",
      j: id,
      a: Date.now() - 3_000,
    };
    await stack.redis.hset(keys.lostCalls(id), `dead-worker/${id}/1`, JSON.stringify(lost));

    const cancel = await stack.request("DELETE", `/v1/jobs/${id}`, { headers: ACME });
    // Shown running (it had made an attempt), so answered as a running job's cancel is; it ended at once.
    expect(cancel.status).toBe(202);
    expect(cancel.body.status).toBe("cancelled");
    expect(cancel.body.attempts).toHaveLength(2);
    expect(cancel.body.attempts[0]).toMatchObject({ reason: "server_error" });
    expect(cancel.body.attempts[1]).toMatchObject({ model: "fast", provider: "sim", outcome: "error" });
    expect(cancel.body.attempts[1].message).toMatch(/stopped/);
    expect(cancel.body.cost_usd).toBeCloseTo(0.06, 9);
    const shown = await stack.request("GET", `/v1/jobs/${id}`, { headers: ACME });
    expect(shown.body.attempts).toEqual(cancel.body.attempts);
    await queue.close();
  });
});
