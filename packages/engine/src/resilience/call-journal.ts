import { randomUUID } from "node:crypto";
import {
  flushCoalescedWrites,
  type Keys,
  type Logger,
  type RedisClient,
  type StrayCharge,
} from "@cascade/shared";
import { CHARGED, JOURNAL_BEAT_LUA, JOURNAL_CLAIM_LUA, JOURNAL_STALE_LUA } from "./lua/journal.lua.js";

/**
 * What a call is charged if the process that sent it dies before settling it (ADR 0033): the
 * estimate its admission reserved, on the usage fields its settlement would have written.
 */
export interface JournalEntry {
  usageKey: string;
  /** Usage hash fields (total, model, route, user, deployment) that each get `costUsd`. */
  fields: string[];
  ttlSeconds: number;
  costUsd: number;
  tenant: string;
  route: string | null;
  firstModel: string;
  model: string;
  /** The provider the call went to, and the pool's deployment (a lost call's attempt names them). */
  provider: string;
  deployment?: string | undefined;
  jobId: string | undefined;
}

/** An entry as stored: short names, one per field of JournalEntry. */
interface StoredEntry {
  u: string;
  f: string[];
  t: number;
  c: number;
  n: string;
  r: string | null;
  fm: string;
  m: string;
  p?: string;
  d?: string;
  j?: string;
  a: number;
}

/**
 * A call of a job that a process left in flight (it died, or stopped past its lock): what the run
 * that takes the job over puts in the job's attempts and cost. `id` names it across runs.
 */
export interface LostCall {
  id: string;
  model: string;
  provider: string;
  deployment?: string;
  /** Its estimate, as the recovery charges it. */
  costUsd: number;
  /** When it went out (ms). */
  startedMs: number;
}

/** A call's place in the journal. */
export interface JournalHandle {
  field: string;
}

export interface CallJournalOptions {
  /** A process whose heartbeat is older than this is taken for dead and its calls charged. */
  staleMs?: number;
  /** How often this process beats, and looks for dead processes' journals. */
  heartbeatMs?: number;
  recoverMs?: number;
  /** How long a job's record of its lost calls is kept (its retention): 7 days by default. */
  lostCallTtlMs?: number;
}

/** Defaults: a process silent for 30 s is dead; beats every 5 s; looks every 10 s (jittered). */
const STALE_MS = 30_000;
const HEARTBEAT_MS = 5_000;
const RECOVER_MS = 10_000;
/** A journal that cannot be written is said once per this. */
const WARN_EVERY_MS = 10_000;
/** A journal key outlives a process that died with no process left to recover it. */
const JOURNAL_TTL_MS = 7 * 86_400_000;
/** How long shutdown waits for a recovery pass, or for its journal's removal. */
const CLOSE_BOUND_MS = 1_000;
/** Dead processes' journals claimed per pass. */
const CLAIMS_PER_PASS = 10;
/** A job's record of lost calls, kept as long as a job by default (JOB_RETENTION_S). */
const LOST_CALL_TTL_MS = 7 * 86_400_000;
/** Fields HSCAN looks at per step while a run looks for its job's lost calls. */
const SCAN_COUNT = 1000;

type Commands = RedisClient & {
  cascadeJournalBeat(numberOfKeys: number, ...args: Array<string | number>): Promise<number>;
  cascadeJournalStale(numberOfKeys: number, ...args: Array<string | number>): Promise<string[]>;
  cascadeJournalClaim(numberOfKeys: number, ...args: Array<string | number>): Promise<string[]>;
};

/**
 * The calls this process has sent and not yet settled, kept in Redis so that money a provider
 * bills for a call in flight when its process is killed is still counted (ADR 0033).
 *
 * - `open` writes an entry before the call goes out (the turn's entries leave in one HSET, before
 *   the request does; nothing waits for the reply).
 * - A settlement removes the entry in the same settle.lua call that writes the call's usage; a
 *   recovery turns an entry into a tombstone and writes its estimate in one script call. A call
 *   settled after its recovery (its process was only paused) writes real cost − estimate: each
 *   call's usage ends at its real cost, or at its estimate if nobody settles it.
 * - Every process beats (every third of its stale time, at most 5 s), setting its deadline in
 *   Redis time: the beat plus its own stale time. Any process finds processes past their deadline
 *   and charges what is left in their journals: usage by tenant, route, model, user and deployment
 *   at once, and the request counts, dashboard and metrics through `onCharge`. Budgets already
 *   hold these calls: admission reserved the same estimate and nothing gave it back.
 */
export class CallJournal {
  readonly key: string;
  private readonly redis: Commands;
  private readonly staleMs: number;
  private readonly heartbeatMs: number;
  private readonly recoverMs: number;
  private readonly lostCallTtlMs: number;
  private sequence = 0;
  /** Entries opened and not yet sent: field, value, field, value… (see `sendUnsent`). */
  private unsent: string[] = [];
  /** The flush of this turn's entries that calls opened in it wait for (see `written`). */
  private turnFlush: Promise<void> | undefined;
  private lastWriteWarningMs = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private recovery: NodeJS.Timeout | undefined;
  private recovering: Promise<void> | undefined;
  private closed = false;
  private recoveryStopped = false;
  /**
   * When this process last failed to beat, or a beat or stale list came back late: no recovery
   * for a stale time after, while live processes' beats may still be on their way.
   */
  private lastBeatFailureMs = 0;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly logger: Logger,
    options: CallJournalOptions = {},
    readonly instanceId: string = randomUUID(),
  ) {
    redis.defineCommand("cascadeJournalBeat", { lua: JOURNAL_BEAT_LUA });
    redis.defineCommand("cascadeJournalStale", { lua: JOURNAL_STALE_LUA });
    redis.defineCommand("cascadeJournalClaim", { lua: JOURNAL_CLAIM_LUA });
    this.redis = redis as Commands;
    this.key = keys.callJournal(instanceId);
    this.staleMs = options.staleMs ?? STALE_MS;
    // Three beats missed before a process is taken for dead.
    this.heartbeatMs = options.heartbeatMs ?? Math.min(HEARTBEAT_MS, Math.floor(this.staleMs / 3));
    this.recoverMs = options.recoverMs ?? Math.min(RECOVER_MS, Math.floor(this.staleMs / 3));
    this.lostCallTtlMs = options.lostCallTtlMs ?? LOST_CALL_TTL_MS;
  }

  /**
   * Writes the entry of a call about to go out, with the rest of the turn's (a call that leaves
   * over the network then waits for `written`); nothing waits for the reply. The call's
   * settlement, on the same connection, comes after it (a write that failed leaves no entry: the
   * settlement then charges the call as usual).
   */
  open(entry: JournalEntry, nowMs: number): JournalHandle {
    this.sequence += 1;
    const call = this.sequence.toString(36);
    // A job's calls are named after it, so the run that takes the job over finds them (lostCalls).
    const handle: JournalHandle = { field: entry.jobId === undefined ? call : `${entry.jobId}/${call}` };
    const stored: StoredEntry = {
      u: entry.usageKey,
      f: entry.fields,
      t: entry.ttlSeconds,
      c: entry.costUsd,
      n: entry.tenant,
      r: entry.route,
      fm: entry.firstModel,
      m: entry.model,
      p: entry.provider,
      a: nowMs,
    };
    if (entry.deployment !== undefined) stored.d = entry.deployment;
    if (entry.jobId !== undefined) stored.j = entry.jobId;
    if (!this.heartbeat && !this.closed) {
      this.startHeartbeat();
      void this.beat();
    }
    this.unsent.push(handle.field, JSON.stringify(stored));
    if (this.unsent.length === 2) setImmediate(this.sendUnsent);
    return handle;
  }

  /**
   * Sends the entries opened since the last send, in one HSET: a turn's calls (some 25 a turn in
   * `bench:throughput`) share one command instead of one each. Called at the end of the turn in
   * which the first of them was opened, when a call waits for them (`written`), and before any
   * settlement is sent (`Resilience`'s settle queue): a settlement, which removes its call's entry,
   * always follows the entry on the connection.
   */
  readonly sendUnsent = (): void => {
    if (this.unsent.length === 0) return;
    const fieldsAndValues = this.unsent;
    this.unsent = [];
    this.redis.hset(this.key, ...fieldsAndValues).catch((error: Error) => {
      const nowMs = Date.now();
      if (nowMs - this.lastWriteWarningMs < WARN_EVERY_MS) return;
      this.lastWriteWarningMs = nowMs;
      this.logger.warn({ err: error.message }, "could not write the journal of calls in flight");
    });
  };

  /**
   * Resolves once the entries opened so far in this turn of the event loop have been handed to
   * the socket: a call that leaves over the network waits for it before its request goes, so its
   * entry never leaves after it (a process killed in between would leave the call uncounted). One
   * flush serves every call opened in the turn: a connection that holds its writes for the turn's
   * end (ADR 0025) sends them in the check phase anyway, and the calls go right after, instead of
   * a socket write of its own per call.
   */
  written(): Promise<void> {
    if (!this.turnFlush)
      this.turnFlush = new Promise<void>((resolve) => {
        setImmediate(() => {
          this.turnFlush = undefined;
          this.sendUnsent();
          try {
            flushCoalescedWrites(this.redis);
          } catch (error) {
            // The connection's own end of turn still sends what it holds; the calls go on.
            this.logger.warn(
              { err: (error as Error).message },
              "could not send the journal's entries at once",
            );
          }
          resolve();
        });
      });
    return this.turnFlush;
  }

  private startHeartbeat(): void {
    if (this.heartbeat || this.closed) return;
    this.heartbeat = setInterval(() => void this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
    // Beats again as soon as Redis is back, so a live process does not look dead for long.
    this.redis.on("ready", this.beatWhenReady);
  }

  private readonly beatWhenReady = () => {
    if (!this.closed) void this.beat();
  };

  private async beat(): Promise<void> {
    const startedMs = Date.now();
    try {
      await this.redis.cascadeJournalBeat(
        2,
        this.key,
        this.keys.callJournals,
        this.instanceId,
        JOURNAL_TTL_MS,
        this.staleMs,
      );
      // A beat held up (Redis away, its command queued) means others' beats were held up too.
      if (Date.now() - startedMs > this.heartbeatMs / 2) this.lastBeatFailureMs = Date.now();
    } catch {
      this.lastBeatFailureMs = Date.now();
    }
  }

  /**
   * Looks for dead processes' journals every `recoverMs` (jittered) and charges what they hold;
   * `onCharge` hears of each call charged (request counts, dashboard, metrics).
   */
  startRecovery(onCharge: (charge: StrayCharge) => void): void {
    if (this.recovery || this.closed) return;
    this.recoveryStopped = false;
    // Beating from the start, with or without calls: a beat held up says Redis was away (recover).
    this.startHeartbeat();
    void this.beat();
    const schedule = () => {
      const delay = this.recoverMs * (0.75 + Math.random() / 2);
      this.recovery = setTimeout(() => {
        this.recovering = this.recover(onCharge)
          .then(() => undefined)
          .catch((error: Error) =>
            this.logger.warn({ err: error.message }, "could not look for calls left by stopped processes"),
          )
          .finally(() => {
            this.recovering = undefined;
            if (!this.recoveryStopped) schedule();
          });
      }, delay);
      this.recovery.unref();
    };
    schedule();
  }

  /**
   * Stops looking for dead processes' journals; resolves once a pass under way has ended, or after
   * a second (a pass waiting for an absent Redis must not hold shutdown up).
   */
  async stopRecovery(): Promise<void> {
    this.recoveryStopped = true;
    if (this.recovery) clearTimeout(this.recovery);
    this.recovery = undefined;
    await bounded(this.recovering, CLOSE_BOUND_MS);
  }

  /** One pass: charges the calls left in journals whose process stopped beating. */
  async recover(onCharge: (charge: StrayCharge) => void): Promise<number> {
    // Right after Redis came back, live processes may not have beaten yet: each has its stale
    // time (the zset holds each process's own deadline) to do so.
    const heldOff = () => Date.now() - this.lastBeatFailureMs < this.staleMs;
    if (heldOff()) return 0;
    const askedMs = Date.now();
    const stale = await this.redis.cascadeJournalStale(1, this.keys.callJournals, CLAIMS_PER_PASS);
    // An answer held up (Redis was away while it waited) may be read before live processes beat
    // again: as for a beat held up, nothing is claimed for a stale time.
    if (Date.now() - askedMs > this.heartbeatMs / 2) this.lastBeatFailureMs = Date.now();
    let charged = 0;
    for (const instanceId of stale) {
      if (instanceId === this.instanceId) continue;
      if (heldOff()) break;
      try {
        charged += await this.claim(instanceId, onCharge);
      } catch (error) {
        this.logger.warn(
          { err: (error as Error).message, instance: instanceId },
          "could not charge the calls a stopped process left in flight",
        );
      }
    }
    return charged;
  }

  private async claim(instanceId: string, onCharge: (charge: StrayCharge) => void): Promise<number> {
    const journalKey = this.keys.callJournal(instanceId);
    const raw = await this.redis.hgetall(journalKey);
    const keys = [this.keys.callJournals, journalKey];
    /** KEYS index (1-based) of each usage hash and job record the script writes. */
    const positions = new Map<string, number>();
    const positionOf = (key: string) => {
      let position = positions.get(key);
      if (position === undefined) {
        keys.push(key);
        position = keys.length;
        positions.set(key, position);
      }
      return position;
    };
    const entries = new Map<string, StoredEntry>();
    const args: Array<string | number> = [instanceId, this.lostCallTtlMs];
    for (const [field, value] of Object.entries(raw)) {
      if (value === CHARGED) continue;
      const entry = readEntry(value);
      if (!entry) {
        // Set aside by the script, uncharged: nothing says what it cost.
        args.push(field, 2, 0);
        continue;
      }
      entries.set(field, entry);
      const record = entry.j === undefined ? 0 : positionOf(this.keys.lostCalls(entry.j));
      args.push(field, positionOf(entry.u), record);
    }
    const claimed = await this.redis.cascadeJournalClaim(keys.length, ...keys, ...args);
    let costUsd = 0;
    const nowMs = Date.now();
    for (const field of claimed) {
      const entry = entries.get(field);
      if (!entry) continue;
      costUsd += entry.c;
      onCharge({
        tenant: entry.n,
        route: entry.r,
        firstModel: entry.fm,
        model: entry.m,
        costUsd: entry.c,
        atMs: nowMs,
      });
    }
    if (claimed.length > 0) {
      this.logger.warn(
        {
          instance: instanceId,
          calls: claimed.length,
          cost_usd: costUsd,
          job_ids: [...new Set(claimed.map((field) => entries.get(field)?.j).filter(Boolean))].slice(0, 20),
        },
        "charged calls a stopped process left in flight (their estimate: the process died before they settled)",
      );
    }
    return claimed.length;
  }

  /**
   * The calls of `jobId` that a process left in flight and nobody settled: those still in a listed
   * process's journal (dead and not yet charged, or only silent, or a run of this very process that
   * lost the job), then those a recovery charged, copied to the job's record. Read in that order, a
   * call charged in between is found in the record. For the run that takes over a job whose run
   * stalled (its worker died or stopped past its lock): each call is an attempt of the job, and its
   * estimate (what the recovery charges, or charged) is part of the job's cost.
   */
  async lostCalls(jobId: string): Promise<LostCall[]> {
    const found = new Map<string, StoredEntry>();
    const pattern = `${escapeGlob(jobId)}/*`;
    const instances = await this.redis.zrange(this.keys.callJournals, "0", "-1");
    await Promise.all(
      instances.map(async (instanceId) => {
        const journalKey = this.keys.callJournal(instanceId);
        let cursor = "0";
        do {
          const [next, fieldsAndValues] = await this.redis.hscan(
            journalKey,
            cursor,
            "MATCH",
            pattern,
            "COUNT",
            SCAN_COUNT,
          );
          cursor = next;
          for (let index = 0; index + 1 < fieldsAndValues.length; index += 2) {
            const entry = readEntry(fieldsAndValues[index + 1] as string);
            if (entry?.j === jobId) found.set(`${instanceId}/${fieldsAndValues[index]}`, entry);
          }
        } while (cursor !== "0");
      }),
    );
    const record = await this.redis.hgetall(this.keys.lostCalls(jobId));
    for (const [id, value] of Object.entries(record)) {
      const entry = readEntry(value);
      if (entry?.j === jobId && !found.has(id)) found.set(id, entry);
    }
    return [...found]
      .map(([id, entry]) => ({
        id,
        model: entry.m,
        provider: entry.p ?? "unknown",
        ...(entry.d !== undefined ? { deployment: entry.d } : {}),
        costUsd: entry.c,
        startedMs: entry.a,
      }))
      .sort((a, b) => a.startedMs - b.startedMs || (a.id < b.id ? -1 : 1));
  }

  /**
   * Stops beating and recovering (call after the settle queue's close). When `settled` (every
   * settlement was written) every call of this process has settled, so its journal goes: an entry
   * left is an orphan (a write sent again after a reconnect). Otherwise it stays, and another
   * process charges the calls whose settlements were lost once this one has gone silent.
   */
  async close(settled: boolean): Promise<void> {
    this.closed = true;
    this.sendUnsent();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.redis.off("ready", this.beatWhenReady);
    await this.stopRecovery();
    if (!settled) return;
    try {
      await bounded(
        Promise.all([this.redis.zrem(this.keys.callJournals, this.instanceId), this.redis.del(this.key)]),
        CLOSE_BOUND_MS,
      );
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "could not remove this process's journal of calls");
    }
  }
}

/** A stored entry, or undefined for a value that is not one. */
function readEntry(value: string): StoredEntry | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(value);
  } catch {
    return undefined;
  }
  const candidate = entry as Partial<StoredEntry> | null;
  return typeof candidate === "object" &&
    candidate !== null &&
    typeof candidate.u === "string" &&
    typeof candidate.c === "number" &&
    typeof candidate.t === "number" &&
    Array.isArray(candidate.f)
    ? (candidate as StoredEntry)
    : undefined;
}

/** `text` as a glob pattern (Redis's MATCH) that matches only itself. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

/** `promise`, or nothing after `ms`. */
async function bounded(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!promise) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
