/**
 * A tenant's uploaded files are held to `tenants.<id>.max_file_storage_mb` (default 1024): files
 * live in Redis, which runs with noeviction, so one tenant uploading without end filled it and
 * every tenant's jobs were refused (black-box audit: four 47 MiB uploads took Redis from 7 MB to
 * 244 MB, kept 7 days). An upload past the limit is a 400 naming `file` that the SDK does not
 * retry; deleting files frees their room; other tenants are not touched by one tenant's files.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { batchClient, uploadBatchInput } from "../support/batch-client.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

/** A valid batch input of about `bytes` bytes. */
function inputOf(bytes: number): string {
  const line = (index: number) =>
    JSON.stringify({
      custom_id: `r${index}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "fast", messages: [{ role: "user", content: "x".repeat(900) }] },
    });
  const lines: string[] = [];
  for (let size = 0, index = 0; size < bytes; index++) {
    lines.push(line(index));
    size += (lines.at(-1) as string).length + 1;
  }
  return lines.join("\n");
}

describe("a tenant's file storage limit", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      withoutWorker: true,
      env: { ACME_KEYS: "acme-key", GLOBEX_KEYS: "globex-key" },
      config: {
        providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
        models: { fast: { provider: "sim" } },
        routes: { default: { chain: [{ model: "fast" }] } },
        tenants: {
          acme: { api_keys_env: "ACME_KEYS", max_file_storage_mb: 1 },
          globex: { api_keys_env: "GLOBEX_KEYS", max_file_storage_mb: 1 },
        },
      },
    });
  });
  afterAll(() => stack?.close());

  it("refuses an upload past it with a 400 naming file, and takes it once files are deleted", async () => {
    const acme = batchClient(stack);
    const first = await uploadBatchInput(acme, inputOf(600_000), "first.jsonl");
    expect(first.bytes).toBeGreaterThan(600_000);
    const refused = await uploadBatchInput(acme, inputOf(600_000), "second.jsonl").then(
      () => undefined,
      (error: InstanceType<typeof OpenAI.APIError>) => error,
    );
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused?.param).toBe("file");
    expect(refused?.code).toBe("storage_limit_exceeded");
    expect(refused?.message).toMatch(/max_file_storage_mb/);
    // Nothing of the refused upload stays: the tenant's files are the first one only.
    const listed = await acme.files.list();
    expect(listed.data.map((file) => file.id)).toEqual([first.id]);

    // Another tenant's room is its own.
    const globex = batchClient(stack, "globex-key");
    await expect(uploadBatchInput(globex, inputOf(600_000), "theirs.jsonl")).resolves.toMatchObject({
      object: "file",
    });

    await acme.files.delete(first.id);
    await expect(uploadBatchInput(acme, inputOf(600_000), "third.jsonl")).resolves.toMatchObject({
      object: "file",
    });
  });
});
