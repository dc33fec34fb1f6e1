/**
 * A tenant's uploaded files are held to `tenants.<id>.max_file_storage_mb` (default 1024): files
 * live in Redis, which runs with noeviction, so one tenant uploading without end filled it and
 * every tenant's jobs were refused (black-box audit: four 47 MiB uploads took Redis from 7 MB to
 * 244 MB, kept 7 days). An upload past the limit is a 400 naming `file` that the SDK does not
 * retry; deleting files frees their room; other tenants are not touched by one tenant's files.
 * Uploads in flight hold their room as their chunks are written (a trickled upload kept up to
 * 100 MiB each for an hour), and files uploaded before sizes were kept are counted (second
 * reader of the change).
 */
import { connect } from "node:net";
import { createKeys } from "@cascade/shared";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { batchClient, uploadBatchInput } from "../support/batch-client.js";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { keysMatching } from "../support/redis-clients.js";

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
      env: {
        ACME_KEYS: "acme-key",
        GLOBEX_KEYS: "globex-key",
        B_KEYS: "b-key",
        C_KEYS: "c-key",
        D_KEYS: "d-key",
      },
      config: {
        providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
        models: { fast: { provider: "sim" } },
        routes: { default: { chain: [{ model: "fast" }] } },
        tenants: {
          acme: { api_keys_env: "ACME_KEYS", max_file_storage_mb: 1 },
          globex: { api_keys_env: "GLOBEX_KEYS", max_file_storage_mb: 1 },
          b: { api_keys_env: "B_KEYS", max_file_storage_mb: 1 },
          c: { api_keys_env: "C_KEYS", max_file_storage_mb: 1 },
          d: { api_keys_env: "D_KEYS", max_file_storage_mb: 1 },
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

  it("counts files uploaded before sizes were kept (no file-bytes entry), from their hashes", async () => {
    const client = batchClient(stack, "b-key");
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    // What a pre-upgrade upload left behind: metadata, data, index; no file-bytes:<tenant> entry.
    const oldId = "file-old0000000000000000000";
    const now = Math.floor(Date.now() / 1000);
    await stack.redis
      .multi()
      .hset(keys.file(oldId), {
        id: oldId,
        tenant: "b",
        bytes: "900000",
        created_at: String(now),
        filename: "old.jsonl",
        purpose: "batch",
        expires_at: String(now + 3600),
      })
      .rpush(keys.fileData(oldId), Buffer.alloc(900_000, 0x20))
      .zadd(keys.fileIndex("b"), 0, oldId)
      .exec();
    const listed = await client.files.list();
    expect(listed.data.map((file) => file.id)).toContain(oldId);
    // 900 kB held + 900 kB more > 1 MiB: should be refused.
    const second = await uploadBatchInput(client, inputOf(900_000), "new.jsonl").then(
      () => "accepted",
      () => "refused",
    );
    expect(second).toBe("refused");
  });

  it("refuses a tenant at its limit before the body, and closes the connection", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const future = Math.floor(Date.now() / 1000) + 3600;
    await stack.redis.hset(keys.fileBytes("c"), "file-x", `${1024 * 1024}:${future}`);
    const { hostname, port } = new URL(stack.url);
    const socket = connect(Number(port), hostname);
    let received = "";
    let closed = false;
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    socket.on("close", () => {
      closed = true;
    });
    await new Promise((resolve) => socket.on("connect", resolve));
    socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer c-key\r\n` +
        "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 10000000\r\n\r\n--xyz\r\n",
    );
    const drip = setInterval(() => socket.writable && socket.write(" "), 100);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    clearInterval(drip);
    socket.destroy();
    expect(received.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
    expect(received).toContain("storage_limit_exceeded");
    expect(closed).toBe(true);
  });

  it("holds uploads in flight to the limit: stalled uploads cannot keep more than it in Redis", async () => {
    const { hostname, port } = new URL(stack.url);
    const prefix = stack.config.settings.CASCADE_REDIS_PREFIX;
    // Every master's keys (a SCAN through a cluster client asks one node, not always the one
    // holding the prefix's tag: a "before" of 0 then counted the earlier tests' files as held).
    const uploadBytes = async () => {
      let bytes = 0;
      for (const key of await keysMatching(stack.redis, `{${prefix}}:file-data:*`)) {
        for (const chunk of await stack.redis.lrangeBuffer(key, 0, -1)) bytes += chunk.length;
      }
      return bytes;
    };
    const before = await uploadBytes();
    const sockets = [];
    for (let index = 0; index < 4; index++) {
      const socket = connect(Number(port), hostname);
      socket.on("error", () => {});
      await new Promise((resolve) => socket.on("connect", resolve));
      socket.write(
        `POST /v1/files HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer d-key\r\n` +
          "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 50000000\r\n\r\n" +
          '--xyz\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n' +
          '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n' +
          "Content-Type: application/octet-stream\r\n\r\n",
      );
      socket.write(Buffer.alloc(1_200_000, 0x20));
      sockets.push(socket);
    }
    // The client now stalls (or trickles): each upload has flushed a 1 MiB chunk to Redis.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const held = (await uploadBytes()) - before;
    for (const socket of sockets) socket.destroy();
    // Tenant d's limit is 1 MiB; Redis holds 4 MiB of its uploads (100 MiB each is allowed, TTL 1 h).
    expect(held).toBeLessThanOrEqual(1024 * 1024);
  });
});
