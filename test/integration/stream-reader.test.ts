/**
 * The API's job event reader (packages/api/src/jobs/stream-reader.ts: one blocking XREAD for
 * every `?wait=` and event-stream reader of the process) on a real Redis or Redis Cluster: a
 * stream followed while the XREAD is blocked on other streams is read at once (the blocked read is
 * interrupted with CLIENT UNBLOCK and issued again), not after the read's 15 s BLOCK. On a cluster,
 * CLIENT ID and CLIENT UNBLOCK must reach the node that serves the streams' slot, where the XREAD
 * blocks: sent to any node, the UNBLOCK missed it, and a new reader waited up to 15 s.
 */
import { randomBytes } from "node:crypto";
import type { RedisClient } from "@cascade/shared";
import type { Cluster, Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, describe, expect, inject, it, vi } from "vitest";
import { StreamReader } from "../../packages/api/src/jobs/stream-reader.js";
import { serverNodes, testRedis } from "../support/redis-clients.js";

const url = inject("redisUrl");
const commands: RedisClient = testRedis(url);
// As the API's reader connection: commands queue while it reconnects, no command timeout, and a
// name of its own (how its new id is found once it has reconnected).
const readerName = `cascade-test-events-${randomBytes(4).toString("hex")}`;
const reader: RedisClient = testRedis(url, {
  enableOfflineQueue: true,
  commandTimeout: undefined,
  maxRetriesPerRequest: null,
  connectionName: readerName,
});
const streams = new StreamReader(reader, commands, pino({ level: "silent" }));

afterAll(async () => {
  streams.close();
  await commands.quit().catch(() => commands.disconnect());
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Closes the reader's connection from the server's side (on a cluster: on every master). */
async function killReaderConnection(): Promise<number> {
  let killed = 0;
  for (const node of await serverNodes(commands, "master")) {
    const list = String(await node.client("LIST"));
    for (const line of list.split("\n")) {
      if (!line.includes(` name=${readerName} `)) continue;
      const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
      if (id) killed += Number(await node.client("KILL", "ID", id));
    }
  }
  return killed;
}

/** Follows a new stream, writes one entry to it and expects it read within 1.5 s. */
async function expectNewStreamRead(key: string, beforeWrite: () => Promise<unknown>): Promise<void> {
  const seen: string[] = [];
  const stop = streams.follow(key, "0", (entries) => {
    for (const entry of entries) seen.push(entry.event);
  });
  try {
    await beforeWrite();
    const written = Date.now();
    await commands.xadd(key, "*", "event", "new");
    await vi.waitFor(() => expect(seen).toContain("new"), { timeout: 1_500, interval: 10 });
    expect(Date.now() - written).toBeLessThan(1_500);
  } finally {
    stop();
  }
}

describe("StreamReader", () => {
  it("reads a stream followed while its XREAD blocks on another, within a second", async () => {
    const tag = `{reader-${randomBytes(4).toString("hex")}}`;
    const [first, second] = [`${tag}:first`, `${tag}:second`];
    const seen: string[] = [];
    const stopFirst = streams.follow(first, "0", (entries) => {
      for (const entry of entries) seen.push(`first ${entry.event}`);
    });
    await commands.xadd(first, "*", "event", "one");
    await vi.waitFor(() => expect(seen).toEqual(["first one"]), { timeout: 2_000 });
    // Its next XREAD now blocks on `first` alone.
    await sleep(300);

    for (let round = 0; round < 3; round += 1) {
      const key = `${second}-${round}`;
      const stop = streams.follow(key, "0", (entries) => {
        for (const entry of entries) seen.push(`${key} ${entry.event}`);
      });
      await sleep(50);
      const written = Date.now();
      await commands.xadd(key, "*", "event", "two");
      await vi.waitFor(() => expect(seen).toContain(`${key} two`), { timeout: 1_500, interval: 10 });
      expect(Date.now() - written).toBeLessThan(1_500);
      stop();
      await sleep(100);
    }
    stopFirst();
  });

  it("reads a new stream within a second after the reader's connection was closed and reopened", async () => {
    const tag = `{reader-${randomBytes(4).toString("hex")}}`;
    const seen: string[] = [];
    const stopFirst = streams.follow(`${tag}:first`, "0", (entries) => {
      for (const entry of entries) seen.push(entry.event);
    });
    await commands.xadd(`${tag}:first`, "*", "event", "one");
    await vi.waitFor(() => expect(seen).toEqual(["one"]), { timeout: 2_000 });
    await sleep(300);

    // Killed while the XREAD blocks: ioredis reconnects and sends the same XREAD again, on a
    // connection with a new id. A stream followed once it is back must still be read at once.
    expect(await killReaderConnection()).toBeGreaterThan(0);
    await sleep(700);
    await expectNewStreamRead(`${tag}:after-reconnect`, () => sleep(50));

    // A stream followed while the connection is down: read once the connection is back.
    await sleep(300);
    expect(await killReaderConnection()).toBeGreaterThan(0);
    await expectNewStreamRead(`${tag}:during-reconnect`, () => sleep(300));

    // The stream followed all along is still read.
    await commands.xadd(`${tag}:first`, "*", "event", "two");
    await vi.waitFor(() => expect(seen).toEqual(["one", "two"]), { timeout: 2_000 });
    stopFirst();
  });

  // During a slot migration a key the migrating master does not hold is answered with ASK, and
  // ioredis sends the XREAD on to the importing master, which the slot table does not name yet.
  it.runIf(inject("redisCluster"))(
    "reads a new stream within a second while its slot is being migrated (the read was sent on by ASK)",
    async () => {
      const tag = `{ask-${randomBytes(4).toString("hex")}}`;
      const slot = Number(await commands.call("CLUSTER", "KEYSLOT", tag));
      const masters = await serverNodes(commands, "master");
      const ownerKey = (commands as Cluster).slots[slot]?.[0];
      const source = masters.find((node) => `${node.options.host}:${node.options.port}` === ownerKey);
      const target = masters.find((node) => node !== source);
      if (!source || !target) throw new Error(`no owner of slot ${slot} among the masters`);
      const sourceId = String(await source.call("CLUSTER", "MYID"));
      const targetId = String(await target.call("CLUSTER", "MYID"));
      await target.call("CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceId);
      await source.call("CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetId);
      const keys = [`${tag}:first`, `${tag}:second`];
      try {
        const seen: string[] = [];
        const stopFirst = streams.follow(keys[0] as string, "0", (entries) => {
          for (const entry of entries) seen.push(entry.event);
        });
        // Written through ASK too: the stream is created on the importing master.
        await commands.xadd(keys[0] as string, "*", "event", "one");
        await vi.waitFor(() => expect(seen).toEqual(["one"]), { timeout: 2_000 });
        expect(Number(await target.call("CLUSTER", "COUNTKEYSINSLOT", String(slot)))).toBeGreaterThan(0);
        await sleep(300);
        await expectNewStreamRead(keys[1] as string, () => sleep(50));
        stopFirst();
      } finally {
        // The keys made on the importing master go (ASKING then DEL on a connection of their own,
        // nothing in between), and the slot stays with its owner whatever happens.
        const direct = target.duplicate();
        try {
          for (const key of keys) {
            await direct.call("ASKING");
            await direct.call("DEL", key).catch(() => {});
          }
        } finally {
          direct.disconnect();
          await source.call("CLUSTER", "SETSLOT", String(slot), "STABLE");
          await target.call("CLUSTER", "SETSLOT", String(slot), "STABLE");
        }
      }
      expect(Number(await target.call("CLUSTER", "COUNTKEYSINSLOT", String(slot)))).toBe(0);
    },
  );

  // Without a name (the lookup's way in), only the reader's `connect` path finds its new id: on a
  // single server ioredis reconnects the same client, whose CLIENT ID goes out while connecting.
  it.skipIf(inject("redisCluster"))(
    "an unnamed reader finds its reconnected connection's id as it connects",
    async () => {
      const unnamed = testRedis(url, {
        enableOfflineQueue: true,
        commandTimeout: undefined,
        maxRetriesPerRequest: null,
      }) as Redis;
      const id = Number(await unnamed.client("ID"));
      const own = new StreamReader(unnamed, commands, pino({ level: "silent" }));
      try {
        const tag = `{unnamed-${randomBytes(4).toString("hex")}}`;
        const seen: string[] = [];
        const stopFirst = own.follow(`${tag}:first`, "0", (entries) => {
          for (const entry of entries) seen.push(`first ${entry.event}`);
        });
        await commands.xadd(`${tag}:first`, "*", "event", "one");
        await vi.waitFor(() => expect(seen).toEqual(["first one"]), { timeout: 2_000 });
        await sleep(300);
        expect(Number(await commands.client("KILL", "ID", String(id)))).toBe(1);
        await sleep(700);
        const stopSecond = own.follow(`${tag}:second`, "0", (entries) => {
          for (const entry of entries) seen.push(`second ${entry.event}`);
        });
        await sleep(50);
        const written = Date.now();
        await commands.xadd(`${tag}:second`, "*", "event", "two");
        await vi.waitFor(() => expect(seen).toContain("second two"), { timeout: 1_500, interval: 10 });
        expect(Date.now() - written).toBeLessThan(1_500);
        stopSecond();
        stopFirst();
      } finally {
        own.close();
      }
    },
  );
});
