/**
 * A stored file read while it goes away (deleted, or its TTL ran out) breaks off with
 * FileChangedError instead of ending early: GET /v1/files/:id/content has sent a Content-Length,
 * and a download that just stopped left the client waiting on bytes that never came (72 s, until
 * the keep-alive timeout).
 */
import { randomBytes } from "node:crypto";
import { FileChangedError, readChunks, readLines } from "@cascade/shared";
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

describe("reading a file's lines", () => {
  const key = `{cascade-test}:file-lines:${randomBytes(6).toString("hex")}`;
  afterAll(() => redis.del(key));

  it("leaves a UTF-8 byte order mark out of the first line (PowerShell 5 and Notepad write one), and CR before LF", async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    await redis.rpush(key, Buffer.concat([bom, Buffer.from('{"a":1}\r\n{"b":"\ufeff"}\n')]));
    const lines: string[] = [];
    for await (const line of readLines(redis, key)) lines.push(line.text);
    expect(lines).toEqual(['{"a":1}', '{"b":"\ufeff"}']);
    expect(JSON.parse(lines[0] as string)).toEqual({ a: 1 });
  });
});
