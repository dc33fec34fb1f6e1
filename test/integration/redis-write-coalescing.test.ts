/**
 * `createRedis(url, { coalesceWrites: true })` (the worker's command connection, ADR 0025), on a
 * real Redis or Redis Cluster: commands written in one event-loop turn leave in one socket write;
 * a command written while earlier ones still wait for their replies leaves at once (ioredis'
 * auto-pipelining held it until the batch before it was answered); replies keep their order; a
 * reconnect's new socket coalesces too; `flushCoalescedWrites` sends what a turn's check phase
 * wrote at once instead of in the next turn's.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import {
  COALESCE_MAX_HOLD_MS,
  type ConnectionOptions,
  flushCoalescedWrites,
  type RedisClient,
} from "@cascade/shared";
import { Cluster, type Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { testRedis } from "../support/redis-clients.js";

const opened: RedisClient[] = [];
afterEach(async () => {
  for (const client of opened.splice(0)) await client.quit().catch(() => client.disconnect());
});

function client(options: ConnectionOptions): RedisClient {
  const redis = testRedis(inject("redisUrl"), options);
  opened.push(redis);
  return redis;
}

/** The connection (one node's, on a cluster) that serves `key`. */
async function nodeFor(redis: RedisClient, key: string): Promise<Redis> {
  await redis.ping();
  if (!(redis instanceof Cluster)) return redis;
  // Any command on the key makes the cluster client route it; the node is then the slot's master.
  await redis.get(key);
  const slot = Number(await redis.cluster("KEYSLOT", key));
  const [host, port] = (redis.slots[slot]?.[0] ?? "").split(":");
  const node = redis.nodes("master").find((n) => n.options.host === host && n.options.port === Number(port));
  if (!node) throw new Error(`no master for slot ${slot}`);
  return node;
}

/** Counts the socket's flushes (each is one write or writev syscall) from now on. */
function countFlushes(node: Redis): { readonly count: number } {
  const socket = node.stream as Socket & {
    _write: (...args: unknown[]) => void;
    _writev?: (...args: unknown[]) => void;
  };
  const counter = { count: 0 };
  const write = socket._write;
  const writev = socket._writev;
  socket._write = function (this: Socket, ...args: unknown[]) {
    counter.count += 1;
    return write.apply(this, args);
  };
  if (writev)
    socket._writev = function (this: Socket, ...args: unknown[]) {
      counter.count += 1;
      return writev.apply(this, args);
    };
  return counter;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Keeps Redis busy for ARGV[1] ms (so the replies of what follows are late). 100 ms: long enough
 * to write after it, short enough not to hold up the other test files on the same Redis.
 */
const BUSY_SCRIPT = `
local start = redis.call('TIME')
local budget = tonumber(ARGV[1]) * 1000
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= budget
return redis.call('INCR', KEYS[1])`;

describe("coalesced Redis writes (ADR 0025)", () => {
  it("sends the commands of one turn in one socket write, replies in order", async () => {
    const tag = `{coalesce-${randomBytes(4).toString("hex")}}`;
    // Held for the whole turn however long it takes (the default; the bound has its own test).
    const redis = client({ coalesceWrites: true });
    const flushes = countFlushes(await nodeFor(redis, `${tag}:n`));
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, index) => redis.incrby(`${tag}:n`, index + 1)),
    );
    expect(flushes.count).toBe(1);
    // 1, 1+2, 1+2+3, …: each reply answers its own command, in the order written.
    expect(replies).toEqual(Array.from({ length: 100 }, (_, index) => ((index + 1) * (index + 2)) / 2));
  });

  it("with coalesceMaxHoldMs (the API's): a write made that long after the first held one sends what is held", async () => {
    const tag = `{coalesce-${randomBytes(4).toString("hex")}}`;
    // The API's bound is COALESCE_MAX_HOLD_MS; 20 ms here, so a pause between two writes made
    // back to back (a GC, a loaded machine) does not split them.
    expect(COALESCE_MAX_HOLD_MS).toBeLessThan(20);
    const redis = client({ coalesceWrites: true, coalesceMaxHoldMs: 20 });
    const flushes = countFlushes(await nodeFor(redis, `${tag}:n`));
    const spin = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {}
    };
    const sent: number[] = [];
    const replies = await new Promise<number[]>((resolve, reject) => {
      // One turn (a check-phase callback, as an API's long poll phase would be), three writes.
      setImmediate(() => {
        const first = redis.incr(`${tag}:n`);
        const second = redis.incr(`${tag}:n`);
        sent.push(flushes.count);
        spin(40);
        // Held past the bound: this write sends the two held ones first, and is held itself.
        const third = redis.incr(`${tag}:n`);
        sent.push(flushes.count);
        Promise.all([first, second, third]).then(resolve, reject);
      });
    });
    expect(sent).toEqual([0, 1]);
    // The third left at the turn's end, on its own.
    expect(flushes.count).toBe(2);
    expect(replies).toEqual([1, 2, 3]);
  });

  it("sends a command at once while the ones before it still wait for their replies", async () => {
    const tag = `{coalesce-${randomBytes(4).toString("hex")}}`;
    const redis = client({ coalesceWrites: true });
    const flushes = countFlushes(await nodeFor(redis, `${tag}:n`));
    let busyAnswered = false;
    const busy = redis.eval(BUSY_SCRIPT, 1, `${tag}:n`, 100).then((value) => {
      busyAnswered = true;
      return value;
    });
    await turn();
    await turn();
    expect(flushes.count).toBe(1);
    const next = redis.incr(`${tag}:n`);
    await turn();
    await turn();
    // Written while Redis still runs the busy script: not held back until its reply.
    expect(busyAnswered).toBe(false);
    expect(flushes.count).toBe(2);
    expect(await busy).toBe(1);
    expect(await next).toBe(2);
  });

  it("coalesces on the new socket after a reconnect", async () => {
    const tag = `{coalesce-${randomBytes(4).toString("hex")}}`;
    const redis = client({ coalesceWrites: true });
    const before = await nodeFor(redis, `${tag}:n`);
    const socket = before.stream;
    // A plain client reconnects itself; a cluster client replaces the node's connection.
    before.disconnect(true);
    expect(await redis.incr(`${tag}:n`)).toBe(1);
    const after = await nodeFor(redis, `${tag}:n`);
    expect(after.stream).not.toBe(socket);
    const flushes = countFlushes(after);
    const replies = await Promise.all(Array.from({ length: 50 }, () => redis.incr(`${tag}:n`)));
    expect(flushes.count).toBe(1);
    expect(replies).toEqual(Array.from({ length: 50 }, (_, index) => index + 2));
  });

  it("without the option, each command is its own write (what the option saves)", async () => {
    const tag = `{coalesce-${randomBytes(4).toString("hex")}}`;
    const redis = client({});
    const flushes = countFlushes(await nodeFor(redis, `${tag}:n`));
    await Promise.all(Array.from({ length: 20 }, () => redis.incr(`${tag}:n`)));
    // Node batches writes queued behind a pending one, so fewer than 20, but more than one.
    expect(flushes.count).toBeGreaterThan(1);
  });

  it("sends a write made in the check phase at once when flushed, not in the next turn", async () => {
    const tag = `{coalesce-${randomBytes(4).toString("hex")}}`;
    const redis = client({ coalesceWrites: true });
    const flushes = countFlushes(await nodeFor(redis, `${tag}:n`));
    const counts = await new Promise<number[]>((resolve, reject) => {
      setImmediate(() => {
        const replies = [redis.incr(`${tag}:n`), redis.incr(`${tag}:n`)];
        const held = flushes.count;
        flushCoalescedWrites(redis);
        const sent = flushes.count;
        // Flushing again (and the turn's own uncork later) sends nothing twice.
        flushCoalescedWrites(redis);
        Promise.all(replies).then((values) => resolve([held, sent, flushes.count, ...values]), reject);
      });
    });
    expect(counts).toEqual([0, 1, 1, 1, 2]);
  });
});
