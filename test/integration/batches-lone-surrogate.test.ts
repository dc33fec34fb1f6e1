/**
 * Batch lines whose custom_id holds a lone UTF-16 surrogate (JSON's "\ud83d": what JSON.stringify
 * and Python's json.dumps write for a string cut inside an emoji) end like any other line (black-box
 * audit). The end-lines script parsed a stopped line's JSON with Lua's cjson, which refuses such an
 * escape: the script failed after it had set the line's ended bit, so the batch never ended and
 * none of its results were published. And the custom-id hash kept the string as UTF-8, so an
 * expired line's error line named "row-\uFFFD", not the input's id.
 */
import type OpenAI from "openai";
import type { Batch } from "openai/resources/batches";
import { describe, expect, inject, it } from "vitest";
import {
  batchClient,
  batchFileLines,
  expireBatchNow,
  uploadBatchInput,
  waitForBatchStatus,
} from "../support/batch-client.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: {
    sim: { type: "simulated", simulate: { latency_ms: 0 } },
    slow: { type: "simulated", simulate: { latency_ms: 20000 } },
  },
  models: { fast: { provider: "sim" }, sluggish: { provider: "slow" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { acme: { api_keys_env: "ACME_KEYS" } },
};

/** A stack of this file's config, sweeper passes run by hand, closed after `run`. */
async function withStack(
  options: { withoutWorker: true } | { concurrency: number },
  run: (stack: Stack, openai: OpenAI) => Promise<void>,
): Promise<void> {
  const stack = await startStack({
    redisUrl: inject("redisUrl"),
    config,
    env: { ACME_KEYS: "acme-key" },
    batches: { sweepIntervalMs: 100_000, idleMs: 100_000 },
    ...options,
  });
  try {
    await run(stack, batchClient(stack));
  } finally {
    await stack.close();
  }
}

/** "row-" + the first half of 😀, as JSON.stringify("row-😀".slice(0, 5)) writes it. */
const LONE = "row-\ud83d";
const line = (customIdJson: string, model: string) =>
  `{"custom_id":${customIdJson},"method":"POST","url":"/v1/chat/completions","body":{"model":"${model}","messages":[{"role":"user","content":"hi"}],"max_tokens":8}}`;

/** Uploads the file and creates its batch: such lines are valid input, as at OpenAI. */
async function create(openai: OpenAI, text: string): Promise<Batch> {
  const file = await uploadBatchInput(openai, text, "in.jsonl");
  return openai.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
}

describe("batch lines whose custom_id holds a lone surrogate", () => {
  it("a line cancelled by DELETE /v1/jobs/:id still lets the batch complete", async () => {
    await withStack({ withoutWorker: true }, async (stack, openai) => {
      const created = await create(openai, `${line('"keep"', "fast")}\n${line('"row-\\ud83d"', "fast")}\n`);
      await waitForBatchStatus(openai, created.id, ["in_progress"]);
      const jobId = `job_${created.id.replace(/^batch_/, "")}-2`;
      const headers = { authorization: "Bearer acme-key" };
      let deleted = await stack.request("DELETE", `/v1/jobs/${jobId}`, { headers });
      for (let i = 0; deleted.status === 404 && i < 100; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        deleted = await stack.request("DELETE", `/v1/jobs/${jobId}`, { headers });
      }
      expect(deleted.status).toBe(200);
      await stack.startWorker();
      await stack.batches.sweeper.sweep();
      const done = await waitForBatchStatus(openai, created.id, ["completed"]);
      expect(done.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
      const errors = await batchFileLines(openai, done.error_file_id as string);
      expect(errors[0]).toMatchObject({ custom_id: LONE, response: null, error: { code: "cancelled" } });
    });
  });

  it("a running line aborted by the batch's expiry still lets the batch end expired", async () => {
    await withStack({ concurrency: 5 }, async (stack, openai) => {
      const created = await create(
        openai,
        `${line('"quick"', "fast")}\n${line('"row-\\ud83d"', "sluggish")}\n`,
      );
      const deadline = Date.now() + 5000;
      while ((await openai.batches.retrieve(created.id)).request_counts?.completed !== 1) {
        if (Date.now() > deadline) throw new Error("the quick line did not finish");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 300)); // the sluggish line is running
      await expireBatchNow(stack, created.id);
      const expired = await waitForBatchStatus(openai, created.id, ["expired"], 10_000);
      expect(expired.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
      const errors = await batchFileLines(openai, expired.error_file_id as string);
      expect(errors[0]).toMatchObject({ custom_id: LONE, response: null, error: { code: "batch_expired" } });
    });
  });

  it("a queued line's batch_expired error line names the custom_id of the input", async () => {
    await withStack({ withoutWorker: true }, async (stack, openai) => {
      const created = await create(openai, `${line('"row-\\ud83d"', "fast")}\n`);
      await waitForBatchStatus(openai, created.id, ["in_progress"]);
      await expireBatchNow(stack, created.id);
      const expired = await waitForBatchStatus(openai, created.id, ["expired"], 10_000);
      const errors = await batchFileLines(openai, expired.error_file_id as string);
      expect(errors[0].custom_id).toBe(LONE);
    });
  });
});
