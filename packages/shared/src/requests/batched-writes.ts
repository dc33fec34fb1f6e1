import type { ChainableCommander } from "ioredis";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";

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
export class HashIncrements {
  private readonly hashes = new Map<
    string,
    { ttlSeconds: number; counts: Map<string, number>; amounts: Map<string, number> }
  >();

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

  /** Queues everything gathered on `commands`, and forgets it. */
  drainInto(commands: ChainableCommander): void {
    for (const [key, hash] of this.hashes) {
      for (const [field, amount] of hash.counts) commands.hincrby(key, field, amount);
      for (const [field, amount] of hash.amounts) commands.hincrbyfloat(key, field, amount);
      commands.expire(key, hash.ttlSeconds);
    }
    this.hashes.clear();
  }

  /** What is gathered, for a log line when it could not be written. */
  summary(): Record<string, Record<string, number>> {
    const summary: Record<string, Record<string, number>> = {};
    for (const [key, hash] of this.hashes) {
      summary[key] = { ...Object.fromEntries(hash.counts), ...Object.fromEntries(hash.amounts) };
    }
    return summary;
  }
}

/**
 * A request observer's writes, gathered in memory and sent as one MULTI every
 * REQUEST_COUNTS_FLUSH_MS (as the resilience settlements are): a request's end costs a few map
 * updates instead of a MULTI of ~10 commands, its promise and its socket write. The timer runs
 * only while something waits to be written, and does not hold the process open; `close()` writes
 * what is left (the worker and the API call it on shutdown, after their last request ended).
 * A write that fails is reported to `onError` with what it held, as the per-request writes were;
 * it is not sent again (a MULTI whose answer was lost may have been applied: counting it twice
 * would be as wrong as losing it).
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

  /** Queues what waits on `transaction`, forgets it, and returns a summary of it for errors. */
  protected abstract drainInto(transaction: ChainableCommander): unknown;

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
      (error: unknown) => this.onError(withHeld(error, held)),
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
    const held = this.increments.summary();
    this.increments.drainInto(transaction);
    return held;
  }
}
