import type { Logger, RedisClient } from "@cascade/shared";
import type { StreamEntry, StreamReader } from "./stream-reader.js";

/** BullMQ events that end a job for `?wait=` (and change it for event-stream readers). */
const ENDED = new Set(["completed", "failed", "removed"]);
/** BullMQ events that change a job without ending it (delayed: it went back to wait for a limit). */
const CHANGED = new Set(["active", "progress", "delayed"]);

/** One wait or watch on one job: `ready` resolves once nothing that happens to the job can be missed. */
export interface Subscription {
  ready: Promise<void>;
}

/**
 * Wakes `?wait=` requests when their job ends, and event-stream readers whenever their job
 * changes (starts, saves a step, ends), from the completion queue's BullMQ event stream.
 *
 * The stream is read only while someone waits or watches: every job the API adds writes events
 * there, and reading all of them back (and decoding them) cost every enqueue ~20 µs of CPU when
 * the reader ran all the time. The first subscriber looks up the stream's last entry (one XREVRANGE),
 * then follows the stream from there, on the process's one blocking XREAD (StreamReader); later
 * subscribers share that cursor. When the last one leaves, the stream is dropped from the XREAD.
 */
export class JobWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly watchers = new Map<string, Set<() => void>>();
  private subscribers = 0;
  /** Resolves once the stream is followed from a position taken after the first subscriber came. */
  private following: Promise<void> | undefined;
  private stopFollowing: (() => void) | undefined;
  /** Counts starts and stops, so a start that finishes after a stop stays stopped. */
  private generation = 0;
  private closed = false;

  constructor(
    private readonly streams: StreamReader,
    private readonly commands: RedisClient,
    private readonly eventsKey: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Calls `listener` whenever the job changes; returns the function that stops it. The listener
   * is also called once when the subscription is ready, so a reader that looked at the job before
   * then looks again and misses nothing.
   */
  watch(jobId: string, listener: () => void): () => void {
    const set = this.watchers.get(jobId) ?? new Set();
    this.watchers.set(jobId, set);
    set.add(listener);
    let active = true;
    void this.subscribe().then(() => {
      if (active) listener();
    });
    return () => {
      if (!active) return;
      active = false;
      set.delete(listener);
      if (set.size === 0 && this.watchers.get(jobId) === set) this.watchers.delete(jobId);
      this.unsubscribe();
    };
  }

  /** Nothing to connect ahead of time: the event stream is read only while someone waits. */
  ready(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Waits until `jobId` ends or `timeoutMs` passes. Read the job after `ready` resolves to miss
   * nothing: an end after that wakes `done`.
   */
  register(jobId: string, timeoutMs: number): Subscription & { done: Promise<void>; cancel(): void } {
    let resolve!: () => void;
    const done = new Promise<void>((settle) => {
      resolve = settle;
    });
    const set = this.waiting.get(jobId) ?? new Set();
    this.waiting.set(jobId, set);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      set.delete(finish);
      if (set.size === 0 && this.waiting.get(jobId) === set) this.waiting.delete(jobId);
      this.unsubscribe();
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    set.add(finish);
    const ready = this.subscribe();
    // Shutting down: answer with the job as it is rather than holding the drain up.
    if (this.closed) finish();
    return { ready, done, cancel: finish };
  }

  /** Wakes local waiters, e.g. after this process cancelled the job itself. */
  wake(jobId: string): void {
    this.changed(jobId);
    for (const finish of [...(this.waiting.get(jobId) ?? [])]) finish();
  }

  wakeAll(): void {
    for (const jobId of [...this.waiting.keys()]) this.wake(jobId);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeAll();
    this.stop();
  }

  private changed(jobId: string): void {
    for (const listener of [...(this.watchers.get(jobId) ?? [])]) listener();
  }

  private subscribe(): Promise<void> {
    this.subscribers += 1;
    if (this.closed) return Promise.resolve();
    this.following ??= this.follow(this.generation);
    return this.following;
  }

  private unsubscribe(): void {
    this.subscribers -= 1;
    if (this.subscribers === 0) this.stop();
  }

  private stop(): void {
    this.generation += 1;
    this.stopFollowing?.();
    this.stopFollowing = undefined;
    this.following = undefined;
  }

  /**
   * Follows the event stream from its last entry now. Never rejects: when Redis cannot be asked,
   * it follows from "$" (the XREAD's own now) and a waiter may then sleep until its timeout.
   */
  private async follow(generation: number): Promise<void> {
    let from = "$";
    try {
      const last = (await this.commands.xrevrange(this.eventsKey, "+", "-", "COUNT", 1)) as Array<
        [string, string[]]
      >;
      from = last[0]?.[0] ?? "0-0";
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "job events: could not read the stream's position");
    }
    // Everyone left (or the API closed) while the position was being read.
    if (generation !== this.generation || this.closed) return;
    this.stopFollowing = this.streams.follow(this.eventsKey, from, (entries) => this.deliver(entries));
  }

  private deliver(entries: StreamEntry[]): void {
    for (const entry of entries) {
      const jobId = entry.jobId;
      if (!jobId) continue;
      if (ENDED.has(entry.event)) this.wake(jobId);
      else if (CHANGED.has(entry.event)) this.changed(jobId);
    }
  }
}
