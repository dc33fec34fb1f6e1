/**
 * EncodedScript (packages/shared/src/redis/encoded-script.ts: fair-add's EVALSHA, encoded by
 * Cascade in one pass instead of by ioredis) on a real Redis or Redis Cluster: Redis receives
 * exactly the arguments given (multi-byte text, binary Buffers, empty values, numbers), the keys'
 * cached encoding follows a change of keys, a flushed script cache is recovered by sending the
 * script once more, and a script error reaches the caller.
 */
import { createHash, randomBytes } from "node:crypto";
import { EncodedScript, type RedisClient } from "@cascade/shared";
import { Cluster } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { testRedis } from "../support/redis-clients.js";

const redis: RedisClient = testRedis(inject("redisUrl"), {});
afterAll(async () => {
  await redis.quit().catch(() => redis.disconnect());
});

/** Answers its keys as Redis received them, then each argument's length and SHA-1 (its bytes). */
const ECHO_LUA = `
local out = {}
for i = 1, #KEYS do out[#out + 1] = KEYS[i] end
for i = 1, #ARGV do out[#out + 1] = #ARGV[i] .. ':' .. redis.sha1hex(ARGV[i]) end
return out
`;

const bytesOf = (value: string | Buffer) => {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, "utf8");
  return `${bytes.length}:${createHash("sha1").update(bytes).digest("hex")}`;
};

const tag = () => `{encoded-${randomBytes(4).toString("hex")}}`;

async function flushScripts(): Promise<void> {
  const nodes = redis instanceof Cluster ? redis.nodes("master") : [redis];
  for (const node of nodes) await node.script("FLUSH");
}

describe("EncodedScript", () => {
  const script = new EncodedScript(redis, `encodedEcho${randomBytes(3).toString("hex")}`, ECHO_LUA, 2);

  it("hands Redis exactly the keys and arguments given", async () => {
    const prefix = tag();
    const keys = [`${prefix}:a`, `${prefix}:ü-€-😀`];
    const binary = Buffer.from([0x00, 0x0d, 0x0a, 0xff, 0x24, 0x2a, 0x80]);
    const text = `héllo\r\n$3\r\n*1 ${"x".repeat(70_000)} 😀`;
    const reply = await script.run(keys, [text, "", binary, 42, "last"]);
    expect(reply).toEqual([...keys, ...[text, "", binary, "42", "last"].map(bytesOf)]);
  });

  it("re-encodes the keys when they change, and keeps each call's own", async () => {
    const [one, two] = [tag(), tag()];
    const first = [`${one}:a`, `${one}:b`];
    const second = [`${two}:c`, `${two}:d`];
    const replies = await Promise.all([
      script.run(first, ["1"]),
      script.run(second, ["2"]),
      script.run(first, ["3"]),
    ]);
    expect(replies).toEqual([
      [...first, bytesOf("1")],
      [...second, bytesOf("2")],
      [...first, bytesOf("3")],
    ]);
  });

  it("runs again after Redis forgot the script (NOSCRIPT: the source is sent once more)", async () => {
    const prefix = tag();
    const keys = [`${prefix}:a`, `${prefix}:b`];
    expect(await script.run(keys, ["before"])).toEqual([...keys, bytesOf("before")]);
    await flushScripts();
    expect(await script.run(keys, ["after"])).toEqual([...keys, bytesOf("after")]);
    expect(await script.run(keys, ["again"])).toEqual([...keys, bytesOf("again")]);
  });

  it("passes a script's error to the caller, and refuses a wrong number of keys", async () => {
    const failing = new EncodedScript(
      redis,
      `encodedFail${randomBytes(3).toString("hex")}`,
      "return redis.error_reply('no ' .. ARGV[1])",
      1,
    );
    await expect(failing.run([`${tag()}:k`], ["luck"])).rejects.toThrow("no luck");
    await expect(failing.run([], ["luck"])).rejects.toThrow("takes 1 keys, was given 0");
  });
});
