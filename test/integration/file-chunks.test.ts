/**
 * A stored file read while it goes away (deleted, or its TTL ran out) breaks off with
 * FileChangedError instead of ending early: GET /v1/files/:id/content has sent a Content-Length,
 * and a download that just stopped left the client waiting on bytes that never came (72 s, until
 * the keep-alive timeout).
 */
import { randomBytes } from "node:crypto";
import { FileChangedError, readChunks } from "@cascade/shared";
import { afterAll, describe, expect, it } from "vitest";
import { testRedis } from "../support/redis-clients.js";

const redis = testRedis();
afterAll(() => redis.quit());

describe("reading a file's chunks", () => {
  const key = `{cascade-test}:file-chunks:${randomBytes(6).toString("hex")}`;
  const chunk = (fill: string) => Buffer.alloc(1024 * 1024, fill);

  it("yields every chunk of a file left alone", async () => {
    await redis.rpush(key, chunk("a"), chunk("b"), chunk("c"));
    let bytes = 0;
    for await (const part of readChunks(redis, key)) bytes += part.length;
    expect(bytes).toBe(3 * 1024 * 1024);
  });

  it("throws when the file is deleted after its first chunk was read", async () => {
    await redis.del(key);
    await redis.rpush(key, chunk("a"), chunk("b"), chunk("c"));
    const reading = readChunks(redis, key);
    expect((await reading.next()).value?.length).toBe(1024 * 1024);
    await redis.del(key);
    await expect(reading.next()).rejects.toBeInstanceOf(FileChangedError);
  });
});
