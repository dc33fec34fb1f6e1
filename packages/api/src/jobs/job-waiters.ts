import { type Logger, QUEUE_NAMES } from "@cascade/shared";
import { QueueEvents, type QueueEventsOptions } from "bullmq";

/**
 * Wakes `?wait=` requests when their job ends. One QueueEvents reader (one blocking XREAD) per
 * API process serves every waiting request.
 */
export class JobWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
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
