import { COALESCE_MAX_HOLD_MS, flushCoalescedWrites, type RedisClient } from "../redis/connection.js";
import { EncodedScript } from "../redis/encoded-script.js";
import type { Keys } from "../redis/keys.js";
import type { JobData } from "../schemas/job.js";
import { FAIR_PLACE_LUA, FAIR_SWEEP_LUA, FAIR_TAGS_LUA, fairAddLua } from "./fair-share.lua.js";
import { FAIR_UNITS, fairStep } from "./fair-share-numbers.js";

type Command = (...args: Array<string | number>) => Promise<unknown>;

const TAGS_COMMAND = "cascadeFairTags";
const PLACE_COMMAND = "cascadeFairPlace";
const ADD_COMMAND = "cascadeFairAdd";
const SWEEP_COMMAND = "cascadeFairSweep";

/**
 * The BullMQ priority a job is added at before `place` moves it to its tag (BullMQ's largest: were
 * the place ever not to run, the job would wait at the back rather than jump the line).
 */
export const FAIR_PLACEHOLDER_PRIORITY = FAIR_UNITS.limit;

/**
 * A MULTI (or pipeline) to queue a command on: ioredis's, or BullMQ's wrapper of it, whose
 * `runCommand(name, args)` queues a command defined on the connection.
 */
export interface FairTransaction {
  runCommand(name: string, args: Array<string | number>): unknown;
}

/** BullMQ's add script for a prioritized job, as BullMQ defined it on the connection. */
export interface BullmqAddScript {
  lua: string;
  /** How many of its arguments are keys (the rest are ARGV). */
  keys: number;
  /** How many ARGV it takes. */
  args: number;
}

/** fair-add as defined on the connection, with the shape of the BullMQ add it wraps. */
interface DefinedAdd {
  script: EncodedScript;
  keys: number;
  args: number;
}

/** One job's add, waiting for its turn's script call. */
interface PendingAdd {
  bullmqArguments: ReadonlyArray<unknown>;
  tenant: string;
  priority: number;
  jobId: string;
  resolve(reply: unknown): void;
  reject(error: unknown): void;
}

/**
 * The most jobs, and bytes of their arguments (their data, mostly), one fair-add call carries:
 * Redis runs a call's adds back to back (~20–30 µs each), so a batch holds it for a few ms at most.
 */
export const FAIR_ADD_MAX_JOBS = 64;
export const FAIR_ADD_MAX_BYTES = 1024 * 1024;

/** Each tenant's `weight` (default 1), as the config file gives it. */
export type TenantWeights = (tenant: string) => number | undefined;

/** Weights from the config file's `tenants` section. */
export function weightsFromConfig(
  tenants: Record<string, { weight?: number | undefined }> | undefined,
): TenantWeights {
  return (tenant) => tenants?.[tenant]?.weight;
}

/**
 * Fair share between tenants on BullMQ's own prioritized set: the BullMQ priorities new jobs get
 * (start-time fair queuing tags, see fair-share.lua.ts), and the sweep that fixes jobs added
 * across a rebase. One script call per enqueue of any number of jobs of one tenant and priority
 * (`priorities`, before the add), one per turn of the event loop for the adds and their tags
 * (`add`), or one per job queued in the add's own MULTI (`queuePlace`).
 */
export class FairTags {
  private readonly tagsCommand: Command;
  private readonly placeCommand: Command;
  private addScript: DefinedAdd | undefined;
  /** Adds asked for in this turn of the event loop, not yet sent (see `add`). */
  private pending: PendingAdd[] = [];
  private pendingBytes = 0;
  /** When the first add of the pending batch was asked for (performance.now()). */
  private pendingSince = 0;
  private flushQueued = false;
  private readonly sweepCommand: Command;
  private readonly jobKeyPrefix: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly weights: TenantWeights = () => undefined,
    /** How long the first add of a batch may wait for more (tests of whole turns pass Infinity). */
    private readonly maxHoldMs = COALESCE_MAX_HOLD_MS,
  ) {
    // Defined once, when the owner is built (not lazily on a busy connection).
    if (!(TAGS_COMMAND in redis)) redis.defineCommand(TAGS_COMMAND, { numberOfKeys: 4, lua: FAIR_TAGS_LUA });
    if (!(PLACE_COMMAND in redis))
      redis.defineCommand(PLACE_COMMAND, { numberOfKeys: 4, lua: FAIR_PLACE_LUA });
    if (!(SWEEP_COMMAND in redis))
      redis.defineCommand(SWEEP_COMMAND, { numberOfKeys: 2, lua: FAIR_SWEEP_LUA });
    const table = redis as unknown as Record<string, Command>;
    this.tagsCommand = (table[TAGS_COMMAND] as Command).bind(redis);
    this.placeCommand = (table[PLACE_COMMAND] as Command).bind(redis);
    this.sweepCommand = (table[SWEEP_COMMAND] as Command).bind(redis);
    this.jobKeyPrefix = keys.completionJob("");
  }

  /** BullMQ priorities of `count` jobs `tenant` enqueues now at `priority` (1..10), in order. */
  async priorities(tenant: string, priority: number, count: number): Promise<number[]> {
    if (count <= 0) return [];
    const queuePrefix = this.keys.completionJob("");
    const reply = (await this.tagsCommand(
      this.keys.fairClock,
      this.keys.completionQueuePrioritized,
      this.keys.completionQueueDelayed,
      this.keys.completionQueueActive,
      queuePrefix,
      tenant,
      Math.min(10, Math.max(1, Math.round(priority))),
      fairStep(this.weights(tenant)),
      count,
    )) as Array<number | string>;
    return reply.map(Number);
  }

  /**
   * Defines fair-add on the connection: the tag, then `bullmq`'s add with the tag as the job's
   * priority, in one script (see fairAddLua). Call once, before `add`; BullMQ must have loaded its
   * scripts on the connection.
   */
  defineAdd(bullmq: BullmqAddScript): void {
    this.addScript = {
      script: new EncodedScript(
        this.redis,
        ADD_COMMAND,
        fairAddLua(bullmq.lua, bullmq.keys, bullmq.args),
        bullmq.keys + 4,
      ),
      keys: bullmq.keys,
      args: bullmq.args,
    };
  }

  /**
   * Runs BullMQ's add with `bullmqArguments` (its keys then its ARGV, as BullMQ would send them,
   * the job at FAIR_PLACEHOLDER_PRIORITY) with the job's tag as its priority instead (fair-add; the
   * placeholder stays only if the tag fails). Resolves to BullMQ's reply: the job id, or its
   * negative error code; rejects with the error its add raised.
   *
   * The adds asked for in one turn of the event loop go to Redis together, in one script call
   * (up to FAIR_ADD_MAX_JOBS jobs or FAIR_ADD_MAX_BYTES of arguments each), sent in the turn's check
   * phase, or sooner once the first has waited `maxHoldMs` (a long turn): a busy API's concurrent
   * requests share the call's cost in Redis and on the connection, and a lone request waits for
   * nothing (docs/decisions/0021-one-round-trip-per-enqueue.md).
   */
  add(
    bullmqArguments: ReadonlyArray<unknown>,
    tenant: string,
    priority: number,
    jobId: string,
  ): Promise<unknown> {
    const add = this.addScript;
    if (!add || bullmqArguments.length !== add.keys + add.args) {
      return Promise.reject(new Error("fair-add: BullMQ's add does not have the shape it was defined with"));
    }
    return new Promise((resolve, reject) => {
      let bytes = 0;
      for (let index = add.keys; index < bullmqArguments.length; index += 1) {
        const value = bullmqArguments[index];
        bytes +=
          typeof value === "string" ? Buffer.byteLength(value) : Buffer.isBuffer(value) ? value.length : 8;
      }
      // A job that would take the batch past its size, or to another queue's keys (a call runs
      // BullMQ's add with one set of keys), goes in the next one.
      const first = this.pending[0];
      if (
        first &&
        (this.pendingBytes + bytes > FAIR_ADD_MAX_BYTES || !sameKeys(first, bullmqArguments, add.keys))
      )
        this.flushAdds();
      const now = performance.now();
      if (this.pending.length === 0) this.pendingSince = now;
      this.pending.push({ bullmqArguments, tenant, priority, jobId, resolve, reject });
      this.pendingBytes += bytes;
      // A batch is sent when full, when its first add has waited `maxHoldMs` (a long turn of a
      // busy API), else at the turn's end.
      if (
        this.pending.length >= FAIR_ADD_MAX_JOBS ||
        this.pendingBytes >= FAIR_ADD_MAX_BYTES ||
        now - this.pendingSince >= this.maxHoldMs
      ) {
        this.flushAdds();
      } else if (!this.flushQueued) {
        this.flushQueued = true;
        setImmediate(this.turnEnded);
      }
    });
  }

  /** The check phase of a turn in which adds were asked for: what is still pending goes. */
  private readonly turnEnded = (): void => {
    this.flushQueued = false;
    this.flushAdds();
  };

  /** Sends the adds asked for so far, in one script call. */
  private readonly flushAdds = (): void => {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const add = this.addScript;
    if (batch.length > 0) {
      if (add) this.runAdds(add, batch);
      else for (const entry of batch) entry.reject(new Error("fair-add is not defined"));
    }
    // Sent from the check phase: without this a coalescing connection would hold the call until
    // the next turn's, behind everything that turn's poll phase does.
    flushCoalescedWrites(this.redis);
  };

  private runAdds(add: DefinedAdd, entries: PendingAdd[]): void {
    // Run from the check phase: a throw here would reach no request, and leave them all waiting.
    try {
      this.sendAdds(add, entries);
    } catch (error) {
      for (const entry of entries) entry.reject(error);
    }
  }

  private sendAdds(add: DefinedAdd, entries: PendingAdd[]): void {
    const keys = this.keys;
    const argv: unknown[] = [this.jobKeyPrefix, entries.length];
    for (const entry of entries) {
      for (let index = add.keys; index < add.keys + add.args; index += 1)
        argv.push(entry.bullmqArguments[index]);
      argv.push(
        entry.tenant,
        String(Math.min(10, Math.max(1, Math.round(entry.priority)))),
        String(fairStep(this.weights(entry.tenant))),
        entry.jobId,
      );
    }
    add.script
      .run(
        [
          ...((entries[0] as PendingAdd).bullmqArguments.slice(0, add.keys) as string[]),
          keys.fairClock,
          keys.completionQueuePrioritized,
          keys.completionQueueDelayed,
          keys.completionQueueActive,
        ],
        argv,
      )
      .then(
        (replies) => {
          if (!Array.isArray(replies) || replies.length !== entries.length) {
            const error = new Error(
              `fair-add answered ${Array.isArray(replies) ? replies.length : typeof replies} for ${entries.length} jobs`,
            );
            for (const entry of entries) entry.reject(error);
            return;
          }
          entries.forEach((entry, index) => {
            const reply: unknown = replies[index];
            if (reply instanceof Error) entry.reject(reply);
            else entry.resolve(reply);
          });
        },
        (error: unknown) => {
          for (const entry of entries) entry.reject(error);
        },
      );
  }

  /**
   * Queues on `transaction`, right after BullMQ's add of job `jobId` at FAIR_PLACEHOLDER_PRIORITY,
   * the script that moves it to its tag (fair-place in fair-share.lua.ts): in a MULTI, the add and
   * its tag are one round trip and no other client sees the placeholder. The transaction must
   * come from the connection this FairTags was built on (the script is defined there). Its reply
   * in the EXEC is the job's BullMQ priority, or 0 when it left the job alone. Returns what
   * `runCommand` returns (the command's promise when `transaction` is a connection inside a MULTI
   * it began itself).
   */
  queuePlace(transaction: FairTransaction, tenant: string, priority: number, jobId: string): unknown {
    return transaction.runCommand(PLACE_COMMAND, this.placeArgs(tenant, priority, jobId));
  }

  /**
   * The same as its own command: for when the queued one failed (the job is added and still at
   * the placeholder). Returns the job's BullMQ priority, or 0 when it left the job alone.
   */
  async place(tenant: string, priority: number, jobId: string): Promise<number> {
    return Number(await this.placeCommand(...this.placeArgs(tenant, priority, jobId)));
  }

  private placeArgs(tenant: string, priority: number, jobId: string): Array<string | number> {
    return [
      this.keys.fairClock,
      this.keys.completionQueuePrioritized,
      this.keys.completionQueueDelayed,
      this.keys.completionQueueActive,
      this.keys.completionJob(""),
      tenant,
      Math.min(10, Math.max(1, Math.round(priority))),
      fairStep(this.weights(tenant)),
      jobId,
      FAIR_PLACEHOLDER_PRIORITY,
    ];
  }

  /**
   * Shifts jobs added across a rebase back into line; at most once per `intervalMs` across all
   * processes. Returns how many jobs moved, or -1 when another process swept recently.
   */
  async sweep(intervalMs: number, slack = FAIR_UNITS.gap): Promise<number> {
    const moved = await this.sweepCommand(
      this.keys.fairClock,
      this.keys.completionQueuePrioritized,
      this.keys.completionJob(""),
      intervalMs,
      slack,
    );
    return Number(moved);
  }
}

/** Whether `bullmqArguments` has the same BullMQ keys (its first `keys` items) as `entry`'s. */
function sameKeys(entry: PendingAdd, bullmqArguments: ReadonlyArray<unknown>, keys: number): boolean {
  for (let index = 0; index < keys; index += 1)
    if (entry.bullmqArguments[index] !== bullmqArguments[index]) return false;
  return true;
}

/**
 * The job's data with `priority` right after `v` and `tenant`, so the fair-tags script can read a
 * queued job's priority from the first bytes of its data without decoding it (JSON keeps insertion
 * order; the worker validates the data whatever its order).
 */
export function fairJobData(data: JobData): JobData {
  return Object.assign({ v: data.v, tenant: data.tenant, priority: data.priority }, data);
}
