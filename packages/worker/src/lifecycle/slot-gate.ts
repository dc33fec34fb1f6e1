/**
 * The worker's run slots (docs/decisions/0026-prefetch-ahead-of-free-slots.md). BullMQ may hand
 * the worker a few more jobs than it runs at once (its concurrency is raised by the prefetch
 * allowance below); a job past the slots waits here, in the order BullMQ handed it over, and
 * starts the moment a run ends — without the Redis round trip a freed BullMQ slot waits for.
 */
export class SlotGate {
  private running = 0;
  private readonly waiting: Array<(admitted: boolean) => void> = [];
  private ended = 0;
  private closed = false;

  constructor(readonly slots: number) {}

  /** Jobs waiting for a slot. */
  get held(): number {
    return this.waiting.length;
  }

  /** True at once when a slot is free; else resolves true when one is, false when closed first. */
  enter(): true | Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.running < this.slots) {
      this.running++;
      return true;
    }
    return new Promise<boolean>((resolve) => this.waiting.push(resolve));
  }

  /** Ends a run: its slot goes to the longest waiting job, if any. */
  leave(): void {
    this.ended++;
    const next = this.waiting.shift();
    if (next) next(true);
    else this.running--;
  }

  /** Admits no one more: every waiting job is told so (it hands its job back). */
  close(): void {
    this.closed = true;
    for (const resolve of this.waiting.splice(0)) resolve(false);
  }

  /** Runs ended since the last call. */
  takeEnded(): number {
    const ended = this.ended;
    this.ended = 0;
    return ended;
  }
}

/** The most jobs held ahead, as a share of the slots. */
const PREFETCH_MAX_SHARE = 0.25;
/** Weight of the last window in the smoothed count of runs ended per window (~10 windows' memory). */
const SMOOTHING = 0.1;
/** The allowance drops only once the smoothed count is this far below it (no flapping). */
const LOWER_BELOW = 0.8;

/**
 * Keeps BullMQ's concurrency at the slots plus about as many jobs as this worker finishes in
 * `windowMs` (smoothed, at most a quarter of the slots): a worker finishing jobs quickly has the
 * next ones in memory when a slot frees, and one whose jobs are slow (or idle) holds none back
 * from other workers. A held job waits about `windowMs`. The allowance moves little: a job that
 * finishes while BullMQ counts more jobs than its concurrency does not bring the next one with
 * its result, and BullMQ then fetches one at a time. Returns the stop function.
 */
export function startPrefetch(
  gate: SlotGate,
  windowMs: number,
  setConcurrency: (concurrency: number) => void,
): () => void {
  const max = Math.floor(gate.slots * PREFETCH_MAX_SHARE);
  if (windowMs <= 0 || max < 1) return () => {};
  let perWindow = 0;
  let ahead = 0;
  const timer = setInterval(() => {
    perWindow += SMOOTHING * (gate.takeEnded() - perWindow);
    const target = Math.min(max, Math.round(perWindow));
    if (target > ahead || target < ahead * LOWER_BELOW) {
      ahead = target;
      setConcurrency(gate.slots + ahead);
    }
  }, windowMs);
  timer.unref();
  return () => clearInterval(timer);
}
