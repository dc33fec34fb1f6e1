/** How a job that came to the gate leaves it. */
export type Admission =
  /** It holds a slot now (give it back with `leave`). */
  | "admitted"
  /** Handed back: the worker is closing, or its slots stopped turning over (no slot taken). */
  | "handed_back"
  /** Its run was interrupted while it waited (cancelled, lock lost): no slot taken. */
  | "interrupted";

interface Held {
  resolve(admission: Admission): void;
  since: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * The worker's run slots (docs/decisions/0026-prefetch-ahead-of-free-slots.md). BullMQ may hand
 * the worker a few more jobs than it runs at once (its concurrency is raised by the prefetch
 * allowance below); a job past the slots is held here, in the order BullMQ handed it over, and
 * starts the moment a run ends — without the Redis round trip a freed BullMQ slot waits for.
 */
export class SlotGate {
  private running = 0;
  private readonly waiting: Held[] = [];
  private ended = 0;
  private closed = false;

  constructor(
    readonly slots: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Jobs held for a slot. */
  get held(): number {
    return this.waiting.length;
  }

  /** How long the longest-held job has waited (0 when none is held). */
  heldForMs(): number {
    const first = this.waiting[0];
    return first ? this.now() - first.since : 0;
  }

  /**
   * "admitted" at once when a slot is free; else the job is held until a slot frees, the gate
   * hands it back, or `signal` (its run's) aborts.
   */
  enter(signal?: AbortSignal): "admitted" | Promise<Admission> {
    if (this.closed) return Promise.resolve("handed_back");
    if (this.running < this.slots) {
      this.running++;
      return "admitted";
    }
    if (signal?.aborted) return Promise.resolve("interrupted");
    return new Promise<Admission>((resolve) => {
      const held: Held = { resolve, since: this.now(), signal, onAbort: undefined };
      if (signal) {
        held.onAbort = () => {
          const at = this.waiting.indexOf(held);
          if (at >= 0) this.waiting.splice(at, 1);
          resolve("interrupted");
        };
        signal.addEventListener("abort", held.onAbort, { once: true });
      }
      this.waiting.push(held);
    });
  }

  /**
   * Ends a run: its slot goes to the longest-held job, if any. `ended`: the job ended here (not
   * put off to the delayed set), counted in the completion rate the allowance follows.
   */
  leave(ended = true): void {
    if (ended) this.ended++;
    const next = this.waiting.shift();
    if (next) this.settle(next, "admitted");
    else this.running--;
  }

  /** Hands every held job back (each gives its job back to the queue); the gate stays open. */
  handBack(): number {
    const held = this.waiting.splice(0);
    for (const job of held) this.settle(job, "handed_back");
    return held.length;
  }

  /** Admits no one more: held jobs are handed back, and so is every later one. */
  close(): void {
    this.closed = true;
    this.handBack();
  }

  /** Runs ended since the last call. */
  takeEnded(): number {
    const ended = this.ended;
    this.ended = 0;
    return ended;
  }

  private settle(held: Held, admission: Admission): void {
    if (held.onAbort) held.signal?.removeEventListener("abort", held.onAbort);
    held.resolve(admission);
  }
}

/** The most jobs held ahead, as a share of the slots. */
const PREFETCH_MAX_SHARE = 0.25;
/**
 * Fewer slots claim nothing ahead: clumps of jobs that finish in one turn cost throughput only
 * when a process runs hundreds at once, and below that `WORKER_CONCURRENCY` stays exactly the
 * jobs a worker shows running.
 */
export const PREFETCH_MIN_SLOTS = 100;
/** Weight of the last window in the smoothed count of runs ended per window (~10 windows' memory). */
const SMOOTHING = 0.1;
/** The allowance drops only once the smoothed count is this far below it (no flapping). */
const LOWER_BELOW = 0.8;
/** A job held longer than this many windows means the slots stopped turning over. */
const HOLD_LIMIT_WINDOWS = 5;
/** The shortest tick (a window under it is counted over this long and scaled). */
const MIN_TICK_MS = 10;

/** Whether a worker with these slots and prefetch window ever claims jobs ahead of its slots. */
export function holdsJobsAhead(slots: number, windowMs: number): boolean {
  return windowMs > 0 && slots >= PREFETCH_MIN_SLOTS;
}

/**
 * Keeps BullMQ's concurrency at the slots plus about as many jobs as this worker finishes in
 * `windowMs` (smoothed, at most a quarter of the slots): a worker finishing jobs quickly has the
 * next ones in memory when a slot frees, and one whose jobs are slow (or idle) holds none back
 * from other workers. The allowance moves little: a job that finishes while BullMQ counts more
 * jobs than its concurrency does not bring the next one with its result, and BullMQ then fetches
 * one at a time. When a job has been held for `HOLD_LIMIT_WINDOWS` windows (the running jobs
 * stopped ending: a provider hangs, calls wait out their timeouts), every held job is handed back
 * to the queue, for any worker, and the allowance starts again from none. Returns the stop function.
 */
export function startPrefetch(
  gate: SlotGate,
  windowMs: number,
  setConcurrency: (concurrency: number) => void,
  onHandBack: (jobs: number) => void = () => {},
): () => void {
  const max = Math.floor(gate.slots * PREFETCH_MAX_SHARE);
  if (!holdsJobsAhead(gate.slots, windowMs)) return () => {};
  const tickMs = Math.max(MIN_TICK_MS, windowMs);
  const holdLimitMs = HOLD_LIMIT_WINDOWS * tickMs;
  let perWindow = 0;
  let ahead = 0;
  let last = Date.now();
  const allow = (next: number) => {
    if (next === ahead) return;
    ahead = next;
    setConcurrency(gate.slots + ahead);
  };
  const timer = setInterval(() => {
    const at = Date.now();
    const elapsed = Math.max(1, at - last);
    last = at;
    // A tick this late comes after a stalled event loop, before the answers that came meanwhile
    // are read: held jobs may be about to start, so they are not judged on it.
    if (elapsed <= 2 * tickMs && gate.heldForMs() > holdLimitMs) {
      perWindow = 0;
      gate.takeEnded();
      allow(0);
      onHandBack(gate.handBack());
      return;
    }
    // A late tick (a busy event loop) counts the ends of more than one window: scaled back.
    perWindow += SMOOTHING * ((gate.takeEnded() * windowMs) / elapsed - perWindow);
    const target = Math.min(max, Math.round(perWindow));
    if (target > ahead || target < ahead * LOWER_BELOW) allow(target);
  }, tickMs);
  timer.unref();
  return () => clearInterval(timer);
}
