import type { ChainableCommander } from "ioredis";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { isRedisRefusal } from "../redis/refusals.js";

/**
 * How long a finished request's counts may wait in memory before they are written: what the
 * dashboard, GET /v1/usage's routes/models/weekly and the alerts' route windows read lags the
 * request's end by at most this (plus the write's round trip). docs/decisions/0023.
 */
export const REQUEST_COUNTS_FLUSH_MS = 200;

/** How long close() waits for the last write before it gives up (and says what was not written). */
export const REQUEST_COUNTS_CLOSE_WAIT_MS = 5_000;

/** Rounds away the binary float noise that adding many small amounts leaves. */
function roundUsd(amount: number): number {
  return Math.round(amount * 1e10) / 1e10;
}

/**
 * Hash increments gathered in memory per (key, field): many requests' HINCRBY/HINCRBYFLOAT
 * become one command per field and one EXPIRE per key at each write.
 */
type Hashes = Map<string, { ttlSeconds: number; counts: Map<string, number>; amounts: Map<string, number> }>;

/** Increments drained for a write: given back when the write never reached Redis. */
export class HeldIncrements {
  constructor(readonly hashes: Hashes) {}

  /** What they hold, for a log line when they could not be written. */
  toJSON(): Record<string, Record<string, number>> {
    const summary: Record<string, Record<string, number>> = {};
    for (const [key, hash] of this.hashes) {
      summary[key] = { ...Object.fromEntries(hash.counts), ...Object.fromEntries(hash.amounts) };
    }
    return summary;
  }
}

export class HashIncrements {
  private hashes: Hashes = new Map();

  get size(): number {
    return this.hashes.size;
  }

  private hash(key: string, ttlSeconds: number) {
    let hash = this.hashes.get(key);
    if (!hash) {
      hash = { ttlSeconds, counts: new Map(), amounts: new Map() };
      this.hashes.set(key, hash);
    }
    return hash;
  }

  /** HINCRBY (whole numbers). */
  count(key: string, field: string, amount: number, ttlSeconds: number): void {
    const { counts } = this.hash(key, ttlSeconds);
    counts.set(field, (counts.get(field) ?? 0) + amount);
  }

  /** HINCRBYFLOAT (USD amounts). */
  add(key: string, field: string, amount: number, ttlSeconds: number): void {
    const { amounts } = this.hash(key, ttlSeconds);
    amounts.set(field, roundUsd((amounts.get(field) ?? 0) + amount));
  }

  /** Queues everything gathered on `commands`, and hands it over (the gathering starts afresh). */
  drainInto(commands: ChainableCommander): HeldIncrements {
    for (const [key, hash] of this.hashes) {
      for (const [field, amount] of hash.counts) commands.hincrby(key, field, amount);
      for (const [field, amount] of hash.amounts) commands.hincrbyfloat(key, field, amount);
      commands.expire(key, hash.ttlSeconds);
    }
    const held = new HeldIncrements(this.hashes);
    this.hashes = new Map();
    return held;
  }

  /** Adds back increments a write did not deliver, to what has gathered since. */
  restore(held: HeldIncrements): void {
    for (const [key, hash] of held.hashes) {
      for (const [field, amount] of hash.counts) this.count(key, field, amount, hash.ttlSeconds);
      for (const [field, amount] of hash.amounts) this.add(key, field, amount, hash.ttlSeconds);
    }
  }
}

/**
 * ioredis's refusal to send a write while the connection is down (a connection without an offline
 * queue, as the API's), and Redis's refusals of a transaction it did not run (EXECABORT: a command
 * refused as it was queued; OOM, READONLY…). Such a write can be sent again without counting
 * anything twice. Not MaxRetriesPerRequestError: ioredis also fails with it the commands a closed
 * connection had sent, which Redis may have run.
 */
function neverApplied(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "ReplyError") return error.message.startsWith("EXECABORT") || isRedisRefusal(error);
  return (
    error.message.startsWith("Stream isn't writeable and enableOfflineQueue options is false") ||
    error.message.startsWith("Cluster isn't ready and enableOfflineQueue options is false")
  );
}

/**
 * A request observer's writes, gathered in memory and sent as one MULTI every
 * REQUEST_COUNTS_FLUSH_MS (as the resilience settlements are): a request's end costs a few map
 * updates instead of a MULTI of ~10 commands, its promise and its socket write. The timer runs
 * only while something waits to be written, and does not hold the process open; `close()` writes
 * what is left (the worker and the API call it on shutdown, after their last request ended).
 * A write that never reached Redis (Redis was away, or refused the transaction) is kept and sent
 * again with the next write, where the recorder can take it back (`restore`); any other failure is
 * reported to `onError` with what it held, and not sent again (a MULTI whose answer was lost may
 * have been applied: counting it twice would be as wrong as losing it).
 */
export abstract class BatchedWrites {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private closed = false;

  constructor(
    protected readonly redis: RedisClient,
    protected readonly onError: (error: unknown) => void,
    private readonly flushMs: number = REQUEST_COUNTS_FLUSH_MS,
  ) {}

  /** Whether anything waits to be written. */
  protected abstract get pending(): boolean;

  /** Queues what waits on `transaction`, forgets it, and returns it (logged when it fails). */
  protected abstract drainInto(transaction: ChainableCommander): unknown;

  /** Takes back what a write that never reached Redis held (`drainInto`'s); false: it is lost. */
  protected restore(_held: unknown): boolean {
    return false;
  }

  /** Call after gathering something: writes it within the flush interval (at once once closed). */
  protected gathered(): void {
    if (this.closed) {
      void this.flush();
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.flushMs);
    this.timer.unref();
  }

  /** Writes what waits now; resolves once written (or once the write failed and was reported). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return this.writing ?? Promise.resolve();
    // One write in flight at a time: while Redis is slow or away, counts keep adding up in memory
    // (bounded by the keys, not by the time) instead of piling MULTIs into the offline queue.
    if (this.writing && !this.closed) return this.writing.then(() => this.flush());
    const transaction = this.redis.multi();
    const held = this.drainInto(transaction);
    const write = transaction.exec().then(
      (replies) => {
        const failed = replies?.find(([error]) => error);
        if (failed?.[0]) this.onError(withHeld(failed[0], held));
      },
      (error: unknown) => {
        // Taken back, it goes with the timer's next write. Not once closed: close() is the last
        // write (a retry at once would spin while Redis is away), so what it holds is reported.
        if (!this.closed && neverApplied(error) && this.restore(held)) this.gathered();
        else this.onError(withHeld(error, held));
      },
    );
    const previous = this.writing;
    const both = previous ? Promise.all([previous, write]).then(() => {}) : write;
    this.writing = both;
    void both.finally(() => {
      if (this.writing === both) this.writing = undefined;
    });
    return both;
  }

  /**
   * Writes what is left and stops the timer (on shutdown, after the last request ended); waits
   * at most `waitMs` for Redis. Requests that end afterwards are written at once.
   */
  async close(waitMs = REQUEST_COUNTS_CLOSE_WAIT_MS): Promise<void> {
    this.closed = true;
    let bound: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      bound = setTimeout(() => resolve(true), waitMs);
    });
    const written = this.flush().then(() => false);
    const gaveUp = await Promise.race([written, timedOut]);
    clearTimeout(bound);
    if (gaveUp) this.onError(new Error(`request counts not written within ${waitMs} ms of shutdown`));
  }
}

function withHeld(error: unknown, held: unknown): unknown {
  if (error instanceof Error) return Object.assign(error, { unwritten: held });
  return { error, unwritten: held };
}

/** A BatchedWrites whose writes are hash increments (usage counts, recent stats; the dashboard adds its failures list). */
export abstract class HashIncrementWrites extends BatchedWrites {
  protected readonly increments = new HashIncrements();

  constructor(
    redis: RedisClient,
    protected readonly keys: Keys,
    onError: (error: unknown) => void = () => {},
    flushMs?: number,
  ) {
    super(redis, onError, flushMs);
  }

  protected get pending(): boolean {
    return this.increments.size > 0;
  }

  protected drainInto(transaction: ChainableCommander): unknown {
    return this.increments.drainInto(transaction);
  }

  protected override restore(held: unknown): boolean {
    if (!(held instanceof HeldIncrements)) return false;
    this.increments.restore(held);
    return true;
  }
}
