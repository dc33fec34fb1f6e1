/**
 * Cancelling a batch that is finalizing (every line has ended; its output is being written, or it
 * is expiring) is a 409, as for one that has ended: nothing is left to cancel, and it ends
 * `completed` or `expired`, never `cancelled`. It answered 200 with the batch still `finalizing`, a
 * cancel that did nothing (black-box audit).
 */
import { createKeys } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { batchClient, uploadBatchInput } from "../support/batch-client.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { acme: { api_keys_env: "ACME_KEYS" } },
};

describe("cancelling a finalizing batch", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { ACME_KEYS: "acme-key" },
      withoutWorker: true,
    });
  });
  afterAll(() => stack?.close());

  it("is a 409 the SDK does not retry, and leaves the batch as it was", async () => {
    const openai = batchClient(stack);
    const line = {
      custom_id: "a",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "fast", messages: [{ role: "user", content: "hi" }] },
    };
    const file = await uploadBatchInput(openai, JSON.stringify(line), "one.jsonl");
    const batch = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // No worker runs: the batch stays open. Put it where a finished one spends a moment.
    const key = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX).batch(batch.id);
    await stack.redis.hset(key, "status", "finalizing", "ending", "complete", "finalizing_at", "1");
    const answer = await stack.request("POST", `/v1/batches/${batch.id}/cancel`, {
      headers: { authorization: "Bearer acme-key" },
    });
    expect(answer.status).toBe(409);
    expect(answer.headers.get("x-should-retry")).toBe("false");
    expect(answer.body.error).toMatchObject({ type: "conflict_error" });
    expect(answer.body.error.message).toMatch(/finalizing/);
    const after = await openai.batches.retrieve(batch.id);
    // Its lines' ends still finish it (here it has one line, not yet run): never cancelling.
    expect(after.status).not.toMatch(/cancel/);
    expect(after.cancelling_at ?? null).toBeNull();
  });
});
