/** The Batch API through the official openai SDK, as the batch tests drive it. */
import OpenAI, { toFile } from "openai";
import type { Batch } from "openai/resources/batches";
import type { Stack } from "./cascade-stack.js";

export function batchClient(stack: Stack, apiKey = "acme-key"): OpenAI {
  return new OpenAI({ baseURL: `${stack.url}/v1`, apiKey, maxRetries: 0 });
}

export async function uploadBatchInput(openai: OpenAI, text: string | Buffer, name = "input.jsonl") {
  const bytes = typeof text === "string" ? Buffer.from(text) : text;
  return openai.files.create({ file: await toFile(bytes, name), purpose: "batch" });
}

/** Polls the batch until its status is one of `statuses`. */
export async function waitForBatchStatus(openai: OpenAI, id: string, statuses: string[], timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let batch: Batch = await openai.batches.retrieve(id);
  while (!statuses.includes(batch.status)) {
    if (Date.now() > deadline)
      throw new Error(
        `batch ${id} still ${batch.status} after ${timeoutMs} ms (${JSON.stringify(batch.request_counts)})`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
    batch = await openai.batches.retrieve(id);
  }
  return batch;
}

/** The lines of an output or error file, parsed. */
// biome-ignore lint/suspicious/noExplicitAny: output lines are whatever JSON the API wrote.
export async function batchFileLines(openai: OpenAI, fileId: string): Promise<any[]> {
  const text = await (await openai.files.content(fileId)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** Pretends the batch's completion window went by, and runs a sweeper pass. */
export async function expireBatchNow(stack: Stack, batchId: string): Promise<void> {
  const key = `{${stack.config.settings.CASCADE_REDIS_PREFIX}}:batch:${batchId}`;
  await stack.redis.hset(key, "expires_at", Math.floor(Date.now() / 1000) - 1);
  await stack.batches.sweeper.sweep();
}
