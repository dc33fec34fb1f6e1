/**
 * The journal of calls in flight (ADR 0033), at the Resilience class on a real Redis: how a call's
 * settlement reads its entry. An entry Redis lost (a failover, a restart without persistence) is
 * no charge: the call is counted its real cost. An entry a recovery charged (a tombstone) is
 * brought from the estimate to the real cost. A recovery charges a silent process's entries once.
 */
import type { Socket } from "node:net";
import type { StrayCharge } from "@cascade/shared";
import { Cluster } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { CallJournal } from "../../packages/engine/dist/resilience/call-journal.js";
import { testRedis } from "../support/redis-clients.js";
import { inlineConfig, startResilience } from "./resilience-class-helpers.js";

const config = inlineConfig({
  providers: { p: { type: "simulated" } },
  models: { m: { provider: "p", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
  routes: { default: { chain: [{ model: "m" }] } },
});
const harness = startResilience(config, "journal");
afterAll(() => harness.close());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Until the journal entry `field` is in Redis (a fixed pause is too short under load). */
async function written(key: string, field: string): Promise<void> {
  while (!(await harness.admin.hexists(key, field))) await sleep(5);
}
const today = () => new Date().toISOString().slice(0, 10);
const usageTotal = async () =>
  Number((await harness.admin.hget(harness.keys.usage("default", today()), "total")) ?? 0);

async function admittedCall() {
  const admission = await harness.resilience.admit(harness.hop("m", { tokens: 120, costUsd: 0.12 }));
  if (admission.admitted !== true) throw new Error("not admitted");
  const { ticket } = admission;
  harness.resilience.journalCall(ticket, { jobId: "job_1", firstModel: "m" });
  const field = ticket.journal?.field as string;
  while (!(await harness.admin.hexists(harness.resilience.journal.key, field))) await sleep(5);
  return { ticket, field };
}

/** A $0.12 call of model m on today's usage (`fields` of it), as Resilience.journalCall writes it. */
const journalEntry = (jobId: string, fields: string[]) => ({
  usageKey: harness.keys.usage("default", today()),
  fields,
  ttlSeconds: 3600,
  costUsd: 0.12,
  tenant: "default",
  route: "default",
  firstModel: "m",
  model: "m",
  provider: "p",
  jobId,
});

const settle = async (ticket: Awaited<ReturnType<typeof admittedCall>>["ticket"], costUsd: number) => {
  await harness.resilience.settle(ticket, {
    reason: undefined,
    promptTokens: 5,
    completionTokens: 5,
    costUsd,
  });
  await harness.resilience.flush();
};

describe("a call's settlement and its journal entry", () => {
  it("counts the real cost and removes the entry", async () => {
    const before = await usageTotal();
    const { ticket, field } = await admittedCall();
    await settle(ticket, 0.01);
    expect(await usageTotal()).toBeCloseTo(before + 0.01, 9);
    expect(await harness.admin.hexists(harness.resilience.journal.key, field)).toBe(0);
  });

  it("counts the real cost when Redis lost the entry", async () => {
    const before = await usageTotal();
    const { ticket } = await admittedCall();
    await harness.admin.del(harness.resilience.journal.key);
    await settle(ticket, 0.01);
    expect(await usageTotal()).toBeCloseTo(before + 0.01, 9);
  });

  it("brings a recovery's estimate to the real cost", async () => {
    const { ticket, field } = await admittedCall();
    // What a recovery leaves: the estimate counted, the entry a tombstone.
    await harness.admin.hincrbyfloat(harness.keys.usage("default", today()), "total", 0.12);
    await harness.admin.hset(harness.resilience.journal.key, field, "!");
    const charged = await usageTotal();
    await settle(ticket, 0.01);
    expect(await usageTotal()).toBeCloseTo(charged - 0.12 + 0.01, 9);
  });
});

describe("a recovery", () => {
  it("charges a silent process's entries once, and leaves a live one alone", async () => {
    const before = await usageTotal();
    const logger = (await import("pino")).pino({ level: "silent" });
    // A process that wrote an entry and then went silent (its beats stopped: closed without settling).
    const dead = new CallJournal(harness.connection, harness.keys, logger, { staleMs: 300 });
    // Each process's own stale time counts: the finder's 300 ms does not make this one dead.
    const live = new CallJournal(harness.connection, harness.keys, logger, { staleMs: 10_000 });
    const entry = journalEntry("job_dead", ["total", "model:m"]);
    const field = dead.open(entry, Date.now()).field;
    live.open({ ...entry, jobId: "job_live" }, Date.now());
    await written(dead.key, field);
    await dead.close(false);
    const charges: StrayCharge[] = [];
    const finder = new CallJournal(harness.connection, harness.keys, logger, { staleMs: 300 });
    await sleep(400);
    // The live one beats (every 100 ms); the dead one's deadline has passed.
    await finder.recover((charge) => charges.push(charge));
    expect(charges).toEqual([
      expect.objectContaining({
        tenant: "default",
        route: "default",
        firstModel: "m",
        model: "m",
        costUsd: 0.12,
      }),
    ]);
    expect(await usageTotal()).toBeCloseTo(before + 0.12, 9);
    expect(await harness.admin.hget(harness.keys.callJournal(dead.instanceId), field)).toBe("!");
    // Once.
    await finder.recover((charge) => charges.push(charge));
    expect(charges).toHaveLength(1);
    await live.close(true);
    await finder.close(true);
  });

  it("sets aside entries that do not read, and still charges the rest", async () => {
    const logger = (await import("pino")).pino({ level: "silent" });
    const before = await usageTotal();
    const dead = new CallJournal(harness.connection, harness.keys, logger, { staleMs: 300 });
    const good = dead.open(
      {
        usageKey: harness.keys.usage("default", today()),
        fields: ["total"],
        ttlSeconds: 3600,
        costUsd: 0.05,
        tenant: "default",
        route: null,
        firstModel: "m",
        model: "m",
        provider: "p",
        jobId: undefined,
      },
      Date.now(),
    ).field;
    const journalKey = harness.keys.callJournal(dead.instanceId);
    await harness.admin.hset(
      journalKey,
      "x1",
      "null",
      "x2",
      "5",
      "x3",
      "{not json",
      "x4",
      '{"c":1,"f":["total"]}',
    );
    await dead.close(false);
    await sleep(400);
    const charges: StrayCharge[] = [];
    const finder = new CallJournal(harness.connection, harness.keys, logger, { staleMs: 300 });
    await finder.recover((charge) => charges.push(charge));
    expect(charges.map((charge) => charge.costUsd)).toEqual([0.05]);
    expect(await usageTotal()).toBeCloseTo(before + 0.05, 9);
    expect(await harness.admin.hgetall(journalKey)).toEqual({
      [good]: "!",
      x1: "!",
      x2: "!",
      x3: "!",
      x4: "!",
    });
    await finder.close(true);
  });
});

describe("a job's lost calls", () => {
  it("are found by the job's id in a silent process's journal, then in the job's record once a recovery charged them, under the same ids", async () => {
    const logger = (await import("pino")).pino({ level: "silent" });
    // Glob characters in the id match only themselves; a job whose id starts with this one's is another job.
    const jobId = "job_lost[1]*?";
    const dead = new CallJournal(harness.connection, harness.keys, logger, { staleMs: 300 });
    const startedMs = Date.now() - 1_000;
    const first = dead.open({ ...journalEntry(jobId, ["total"]), deployment: "east" }, startedMs).field;
    const second = dead.open({ ...journalEntry(jobId, ["total"]), costUsd: 0.05 }, startedMs + 10).field;
    const settled = dead.open(journalEntry(jobId, ["total"]), startedMs + 20).field;
    dead.open(journalEntry(`${jobId}2`, ["total"]), startedMs);
    dead.open(journalEntry("job_lost", ["total"]), startedMs);
    dead.open({ ...journalEntry("job_none", ["total"]), jobId: undefined }, startedMs);
    await written(dead.key, settled);
    // Its settlement removes a call's entry: not lost.
    await harness.admin.hdel(harness.keys.callJournal(dead.instanceId), settled);
    // The process that charges the calls keeps their records as long as its jobs (JOB_RETENTION_S).
    const finder = new CallJournal(harness.connection, harness.keys, logger, {
      staleMs: 300,
      lostCallTtlMs: 60_000,
    });
    const expected = [
      {
        id: `${dead.instanceId}/${first}`,
        model: "m",
        provider: "p",
        deployment: "east",
        costUsd: 0.12,
        startedMs,
      },
      {
        id: `${dead.instanceId}/${second}`,
        model: "m",
        provider: "p",
        costUsd: 0.05,
        startedMs: startedMs + 10,
      },
    ];
    // The process is silent, not yet taken for dead: found in its journal.
    expect(await finder.lostCalls(jobId)).toEqual(expected);
    expect(await harness.admin.exists(harness.keys.lostCalls(jobId))).toBe(0);

    await dead.close(false);
    await sleep(400);
    await finder.recover(() => {});
    // Charged: the journal holds tombstones and is off the list; the job's record has the entries.
    expect(await harness.admin.zscore(harness.keys.callJournals, dead.instanceId)).toBeNull();
    expect(await harness.admin.hget(harness.keys.callJournal(dead.instanceId), first)).toBe("!");
    expect(await finder.lostCalls(jobId)).toEqual(expected);
    const ttl = await harness.admin.pttl(harness.keys.lostCalls(jobId));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // Each job's own record; a call of no job leaves none.
    expect(await finder.lostCalls(`${jobId}2`)).toHaveLength(1);
    expect(await finder.lostCalls("job_lost")).toHaveLength(1);
    expect(await harness.admin.exists(harness.keys.lostCalls("job_none"))).toBe(0);
    await finder.close(true);
  });
});

describe("an entry's way out", () => {
  it("is on its socket, no longer held for the turn's end, once written() resolves (a call goes only then)", async () => {
    const logger = (await import("pino")).pino({ level: "silent" });
    // As the worker's and the API's connections: writes held until the turn's check phase.
    const connection = testRedis(undefined, { coalesceWrites: true, maxRetriesPerRequest: 1 });
    await connection.ping();
    const sockets = () =>
      (connection instanceof Cluster ? connection.nodes("master") : [connection])
        .map((node) => node.stream as Socket | undefined)
        .filter((socket): socket is Socket => socket !== undefined);
    const held = () => sockets().some((socket) => socket.writableCorked > 0 && socket.writableLength > 0);
    const journal = new CallJournal(connection, harness.keys, logger, { staleMs: 10_000 });
    const entry = journalEntry("job_out", ["total"]);
    // A cluster connects to each master on its own: the journal's node must be connected (not
    // holding writes in its offline queue) before the first entry, as it is in a running worker.
    await connection.hlen(journal.key);
    try {
      for (let call = 0; call < 3; call += 1) {
        const { field } = journal.open(entry, Date.now());
        await journal.written();
        // Handed to the socket before the call's request would go.
        expect(held()).toBe(false);
        while (!(await harness.admin.hexists(journal.key, field))) await sleep(5);
      }
    } finally {
      await journal.close(false);
      await harness.admin.del(journal.key);
      connection.disconnect();
    }
  });
});

describe("a turn's entries", () => {
  it("leave in one HSET, all of them", async () => {
    const logger = (await import("pino")).pino({ level: "silent" });
    const connection = testRedis(undefined, { coalesceWrites: true, maxRetriesPerRequest: 1 });
    const hsets: number[] = [];
    const hset = connection.hset.bind(connection) as (...args: unknown[]) => Promise<number>;
    (connection as unknown as { hset: (...args: unknown[]) => Promise<number> }).hset = (...args) => {
      hsets.push(args.length);
      return hset(...args);
    };
    const journal = new CallJournal(connection, harness.keys, logger, { staleMs: 10_000 });
    try {
      const fields = Array.from(
        { length: 20 },
        () => journal.open(journalEntry("job_turn", ["total"]), Date.now()).field,
      );
      await journal.written();
      // One command: the key, then a field and its entry per call.
      expect(hsets).toEqual([1 + 2 * 20]);
      // Written is handed to the socket: under load (a cluster, files in parallel) the reply can
      // take longer than any fixed pause (CI saw none of the 20 after 50 ms).
      await expect
        .poll(async () => (await harness.admin.hkeys(journal.key)).sort(), { timeout: 10_000 })
        .toEqual([...fields].sort());
    } finally {
      await journal.close(false);
      await harness.admin.del(journal.key);
      connection.disconnect();
    }
  });

  it("go before a settlement sent in the same turn, which removes its call's entry", async () => {
    const admission = await harness.resilience.admit(harness.hop("m", { tokens: 120, costUsd: 0.12 }));
    if (admission.admitted !== true) throw new Error("not admitted");
    const { ticket } = admission;
    const before = await usageTotal();
    harness.resilience.journalCall(ticket, { jobId: "job_same_turn", firstModel: "m" });
    const field = ticket.journal?.field as string;
    // Settled in the very turn the call was opened (a simulated call answers at once).
    await settle(ticket, 0.01);
    await sleep(50);
    // No entry left behind, which a recovery would one day charge again.
    expect(await harness.admin.hexists(harness.resilience.journal.key, field)).toBe(0);
    expect(await usageTotal()).toBeCloseTo(before + 0.01, 9);
  });
});
