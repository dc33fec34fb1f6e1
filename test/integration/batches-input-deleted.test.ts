/**
 * An input file deleted while POST /v1/batches validates it (OpenAI lets a file go at any time; a
 * clean-up job racing a submitter does) is a 400 naming the file: it was a 500 (the read's
 * FileChangedError reached the error handler), which OpenAI's SDKs retry, or, deleted just before
 * the read, a 400 saying the file "holds no requests" (black-box audit).
 */
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { batchClient, uploadBatchInput } from "../support/batch-client.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: { acme: { api_keys_env: "ACME_KEYS" } },
};

describe("an input file deleted while its batch is being validated", () => {
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

  it("is a 400 naming the missing file, never a 500", async () => {
    const openai = batchClient(stack);
    const text = Array.from({ length: 50_000 }, (_, index) =>
      JSON.stringify({
        custom_id: `r${index}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "fast", messages: [{ role: "user", content: `hello there ${index}` }], max_tokens: 8 },
      }),
    ).join("\n");
    const seen: string[] = [];
    for (const delayMs of [0, 20, 60]) {
      const file = await uploadBatchInput(openai, text, "big.jsonl");
      const creating = openai.batches
        .create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })
        .then(
          async (batch) => {
            await openai.batches.cancel(batch.id).catch(() => {});
            return "200";
          },
          (error: InstanceType<typeof OpenAI.APIError>) => `${error.status} ${error.message}`,
        );
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      await openai.files.delete(file.id);
      seen.push(await creating);
    }
    expect(seen.filter((answer) => /^5|holds no requests/.test(answer))).toEqual([]);
    for (const answer of seen)
      expect(answer).toMatch(/^200$|^400 400 input_file_id: file file-\S+ was deleted$/);
  }, 60_000);
});
