/**
 * The hot-path patches of ADR 0038, on a real Redis (or Redis Cluster): ioredis builds a
 * command's arguments without `Array.prototype.flat` (the same arguments either way, BullMQ's
 * nested script arguments included) and writes a command holding Buffers in runs of framed
 * strings, each run measured once (the same bytes), and BullMQ stringifies a completed job's
 * return value once, not twice, while a return value that cannot be stringified still fails its
 * job. The first test of each group fails on the unpatched package; the others show that nothing
 * else changed.
 */
import { randomBytes } from "node:crypto";
import { createKeys, type RedisClient } from "@cascade/shared";
import { createQueue } from "@cascade/shared/bullmq";
import { type Job, QueueEvents, Worker } from "bullmq";
import { Command } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { testRedis } from "../support/redis-clients.js";

const opened: RedisClient[] = [];
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  for (const client of opened.splice(0)) await client.quit().catch(() => client.disconnect());
});

/**
 * Stacks of the `Array.prototype.flat` calls made from ioredis or BullMQ from now on (calls from
 * anything else in the process, the test runner's own, are not counted).
 */
function flatCallsFromRedisClients(): string[] {
  const flat = Array.prototype.flat;
  const calls: string[] = [];
  vi.spyOn(Array.prototype, "flat").mockImplementation(function (this: unknown[], ...args: [number?]) {
    const stack = new Error().stack ?? "";
    if (/[/\\](ioredis|bullmq)[/\\]/.test(stack)) calls.push(stack);
    return flat.apply(this, args);
  });
  return calls;
}

function client(): RedisClient {
  const redis = testRedis(inject("redisUrl"));
  opened.push(redis);
  return redis;
}

describe("ioredis (patched): a command's arguments", () => {
  it("are built without Array.prototype.flat, whether flat or nested as BullMQ passes them", () => {
    const flatCalls = flatCallsFromRedisClients();
    const packed = Buffer.from("packed");
    const args = ["key", 1, packed, "value"];
    // A name with no argument transformer of its own (HSET's, say, flattens objects and maps).
    const command = new Command("echo", args);
    expect(command.args).toEqual(["key", "1", packed, "value"]);
    // The command turned the number into a string in its own copy, not in the caller's array.
    expect(args[1]).toBe(1);
    // BullMQ's script calls: [sha, numberOfKeys, [keys and arguments]] (its ioredis adapter).
    const inner = ["bull:q:wait", "bull:q:active", 5, packed];
    expect(new Command("evalsha", ["sha", 2, inner]).args).toEqual([
      "sha",
      "2",
      "bull:q:wait",
      "bull:q:active",
      "5",
      packed,
    ]);
    expect(inner[2]).toBe(5);
    expect(flatCalls).toEqual([]);
  });

  it("are flattened one level, holes dropped, as Array.prototype.flat does", () => {
    // One level: the inner ["deep"] stays an array, which the command then joins into a string.
    expect(new Command("echo", ["key", ["field", "value"], [["deep"]]]).args).toEqual([
      "key",
      "field",
      "value",
      "deep",
    ]);
    expect(new Command("echo", ["key", [["a", "b"]]]).args).toEqual(["key", "a,b"]);
    // biome-ignore lint/suspicious/noSparseArray: a hole with nothing nested beside it
    expect(new Command("echo", ["a", , "b"]).args).toEqual(["a", "b"]);
    // biome-ignore lint/suspicious/noSparseArray: holes are what this checks
    const sparse = ["a", , "b", ["c", , "d"], []];
    expect(sparse.flat()).toEqual(["a", "b", "c", "d"]);
    expect(new Command("echo", sparse).args).toEqual(["a", "b", "c", "d"]);
  });

  it("reach Redis as before: nested and flat arguments, buffers included", async () => {
    const redis = client();
    const key = `{patched-${randomBytes(4).toString("hex")}}:h`;
    await redis.hset(key, ["a", "1"], "b", Buffer.from("2"));
    expect(await redis.hgetall(key)).toEqual({ a: "1", b: "2" });
    await redis.del(key);
  });
});

/** A command's RESP bytes by the protocol's definition, for comparison with what ioredis writes. */
function resp(name: string, args: Array<string | Buffer>): Buffer {
  const parts = [Buffer.from(`*${args.length + 1}\r\n`)];
  for (const arg of [name, ...args]) {
    const bytes = typeof arg === "string" ? Buffer.from(arg, "utf8") : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

describe("ioredis (patched): a command holding Buffers", () => {
  // What BullMQ's script calls hold: keys, a msgpack Buffer, a return value's JSON, another Buffer.
  const args = () => [
    "0123456789abcdef0123456789abcdef01234567",
    "3",
    "bull:{q}:wait",
    "bull:{q}:active",
    "bull:{q}:completed",
    Buffer.from([0x93, 0x00, 0xff, 0x0d, 0x0a]),
    JSON.stringify({ reply: "déjà vu, naïve café — 🚀", tokens: [1, 2, 3] }),
    Buffer.alloc(0),
    "",
    Buffer.from("tail"),
  ];

  it("is written as its RESP bytes, its framed strings measured in runs (11 times; unpatched 38)", () => {
    const command = new Command("evalsha", args());
    const byteLength = vi.spyOn(Buffer, "byteLength");
    const written = command.toWritable({});
    const measured = byteLength.mock.calls.length;
    byteLength.mockRestore();
    expect(Buffer.isBuffer(written)).toBe(true);
    expect(Buffer.compare(written as Buffer, resp("evalsha", args()))).toBe(0);
    // The name, each of the 7 string arguments (its length prefix) and each run of framed strings
    // before a non-empty Buffer or at the end (3): 11. Unpatched: 38 (three times each string).
    expect(measured).toBe(1 + 7 + 3);
  });

  it("of any shape is written as its RESP bytes: Buffers first or last, odd UTF-16, long strings", () => {
    const long = "é🚀 ".repeat(20_000); // 80,000 UTF-16 units: a part of its own, past the Buffer pool
    const cases: Array<Array<string | Buffer>> = [
      [Buffer.from("first"), "then ünïcode"],
      ["key", Buffer.from("last")],
      [Buffer.alloc(0)],
      [Buffer.from("a"), Buffer.from("b")],
      // Lone surrogates, and a pair split across two arguments: each half its own replacement
      // character (3 bytes), as Buffer.from writes it, not one 4-byte character across the frame.
      ["lone \ud800", Buffer.from("x"), "\udc00 lone"],
      ["split \ud83d", "\ude80 pair", Buffer.from("x")],
      ["x".repeat(5000), Buffer.from("beyond the pool")],
      ["before", long, Buffer.from("x"), long, "after", long],
      // Runs longer than a part may grow: cut between two arguments.
      [Buffer.from("x"), ...Array.from({ length: 5 }, (_, index) => `${index}${"ü".repeat(20_000)}`), "end"],
    ];
    for (const each of cases) {
      const written = new Command("rpush", [...each]).toWritable({});
      expect(Buffer.compare(written as Buffer, resp("rpush", each))).toBe(0);
    }
  });

  it("reaches a defined script byte for byte, by EVALSHA and by its EVAL fallback", async () => {
    const redis = client() as RedisClient & {
      patchedEchoBuffer(key: string, ...args: Array<string | Buffer>): Promise<Buffer[]>;
    };
    // One key (hash-tagged): on a cluster both calls go to the same node and connection.
    redis.defineCommand("patchedEcho", { numberOfKeys: 1, lua: "return ARGV" });
    const key = `{patched-${randomBytes(4).toString("hex")}}:script`;
    const values = [...args(), "é".repeat(70_000)];
    const expected = values.map((value) =>
      (typeof value === "string" ? Buffer.from(value) : value).toString("hex"),
    );
    // The first call on a connection goes as EVAL (the script not loaded there yet), the next as EVALSHA.
    for (let call = 0; call < 2; call += 1) {
      const echoed = await redis.patchedEchoBuffer(key, ...values);
      expect(echoed.map((value) => value.toString("hex"))).toEqual(expected);
    }
  });

  it("reaches Redis byte for byte", async () => {
    const redis = client();
    const key = `{patched-${randomBytes(4).toString("hex")}}:l`;
    const values = args();
    await redis.rpush(key, ...values);
    const stored = await redis.lrangeBuffer(key, 0, -1);
    expect(stored.map((value) => value.toString("hex"))).toEqual(
      values.map((value) => (typeof value === "string" ? Buffer.from(value) : value).toString("hex")),
    );
    await redis.del(key);
  });
});

describe("BullMQ (patched): a completed job's return value", () => {
  async function queueAndWorker(processor: (job: Job) => Promise<unknown>) {
    const prefix = createKeys(`patched-${randomBytes(4).toString("hex")}`).bullPrefix;
    const name = "patched";
    const queue = createQueue(name, { connection: client(), prefix, logger: pino({ level: "silent" }) });
    closers.push(() => queue.close());
    const events = new QueueEvents(name, { connection: client(), prefix });
    closers.push(() => events.close());
    await events.waitUntilReady();
    const worker = new Worker(name, processor, { connection: client(), prefix });
    closers.push(() => worker.close());
    return { queue, events };
  }

  it("is stringified once, and stored as that string; the job's commands use no Array.prototype.flat", async () => {
    const flatCalls = flatCallsFromRedisClients();
    let stringified = 0;
    const value = {
      toJSON() {
        stringified += 1;
        return { answer: 42 };
      },
    };
    const { queue, events } = await queueAndWorker(async () => value);
    const job = await queue.add("one", { n: 1 });
    await job.waitUntilFinished(events, 10_000);
    expect(stringified).toBe(1);
    const stored = await queue.getJob(job.id as string);
    expect(stored?.returnvalue).toEqual({ answer: 42 });
    // The add, the take and the completion are BullMQ script calls through ioredis's Command.
    expect(flatCalls).toEqual([]);
  });

  it("that cannot be stringified still fails the job, with the error stringifying threw", async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const { queue, events } = await queueAndWorker(async () => circular);
    const job = await queue.add("circular", { n: 1 });
    await expect(job.waitUntilFinished(events, 10_000)).rejects.toThrow(/circular/i);
    const stored = await queue.getJob(job.id as string);
    expect(await stored?.getState()).toBe("failed");
  });
});
