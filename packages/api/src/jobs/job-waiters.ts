import { type Logger, QUEUE_NAMES } from "@cascade/shared";
import { QueueEvents, type QueueEventsOptions } from "bullmq";

/**
 * Wakes `?wait=` requests when their job ends, and event-stream readers whenever their job
 * changes (starts, saves a step, ends). One QueueEvents reader (one blocking XREAD) per API
 * process serves every request.
 */
export class JobWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly events: QueueEvents;

  constructor(options: QueueEventsOptions, logger: Logger) {
    this.events = new QueueEvents(QUEUE_NAMES.completions, options);
    this.events.on("error", (error) =>
      logger.warn({ err: (error as Error).message }, "queue events error; retrying"),
    );
    const wake = ({ jobId }: { jobId: string }) => this.wake(jobId);
    this.events.on("completed", wake);
    this.events.on("failed", wake);
    this.events.on("removed", wake);
    const changed = ({ jobId }: { jobId: string }) => this.changed(jobId);
    this.events.on("active", changed);
    this.events.on("progress", changed);
  }

  /** Calls `listener` whenever the job changes; returns the function that stops it. */
  watch(jobId: string, listener: () => void): () => void {
    const set = this.watchers.get(jobId) ?? new Set();
    this.watchers.set(jobId, set);
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.watchers.get(jobId) === set) this.watchers.delete(jobId);
    };
  }

  private changed(jobId: string): void {
    for (const listener of [...(this.watchers.get(jobId) ?? [])]) listener();
  }

  ready(): Promise<void> {
    return this.events.waitUntilReady().then(() => undefined);
  }

  /** Waits until `jobId` ends or `timeoutMs` passes; register before reading the job to miss nothing. */
  register(jobId: string, timeoutMs: number): { done: Promise<void>; cancel(): void } {
    let resolve!: () => void;
    const done = new Promise<void>((settle) => {
      resolve = settle;
    });
    const set = this.waiting.get(jobId) ?? new Set();
    this.waiting.set(jobId, set);
    const finish = () => {
      clearTimeout(timer);
      set.delete(finish);
      if (set.size === 0 && this.waiting.get(jobId) === set) this.waiting.delete(jobId);
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    set.add(finish);
    return { done, cancel: finish };
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
    this.wakeAll();
    await this.events.close();
  }
}
