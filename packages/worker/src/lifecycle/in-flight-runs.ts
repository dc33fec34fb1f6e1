import { type InterruptionKind, RunSignal } from "@cascade/engine";
import type { Clock } from "@cascade/shared";

/** How long a cancellation for a job this process does not hold yet is kept for it. */
const EARLY_INTERRUPTION_TTL_MS = 60_000;

/**
 * The runs this worker process holds, and the one way to interrupt them: a cancellation (pub/sub),
 * a lost lock (BullMQ's `lockRenewalFailed`, or a write that found the lock gone) or a shutdown.
 * A cancellation that arrives just before its job is registered here (the cancel raced the job's
 * start) is kept for a minute and applied when the run starts. Other kinds are not kept: a lost
 * lock or a shutdown for a job not held here concerns a run that already ended, and keeping it
 * would abort the next run of that job on this worker before it begins.
 */
export class InFlightRuns {
  private readonly runs = new Map<string, RunSignal>();
  private readonly early = new Map<string, { kind: InterruptionKind; at: number }>();

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.runs.size;
  }

  /**
   * Registers a run of `jobId`; its signal (shared by the run's calls, engine run-signal.ts) is
   * already aborted if an interruption came first.
   */
  start(jobId: string): RunSignal {
    const run = new RunSignal();
    this.runs.set(jobId, run);
    if (this.early.size > 0) {
      const early = this.early.get(jobId);
      if (early) {
        this.early.delete(jobId);
        run.interrupt(early.kind);
      }
    }
    return run;
  }

  /** Forgets the run (only that run: a later run of the same job may hold the entry now). */
  end(jobId: string, run: RunSignal): void {
    if (this.runs.get(jobId) === run) this.runs.delete(jobId);
  }

  /**
   * Aborts the run of `jobId` held here; false when none is (a cancellation is then kept for a
   * while, in case its run is about to start; any other kind is dropped).
   */
  interrupt(jobId: string, kind: InterruptionKind): boolean {
    const run = this.runs.get(jobId);
    if (run) {
      run.interrupt(kind);
      return true;
    }
    if (kind !== "cancelled") return false;
    const now = this.clock.now();
    this.early.set(jobId, { kind, at: now });
    for (const [id, entry] of this.early) {
      if (now - entry.at > EARLY_INTERRUPTION_TTL_MS) this.early.delete(id);
    }
    return false;
  }

  /**
   * Aborts one particular run, whether or not it is still the one held for its job: a run that
   * found its own lock gone stops itself, not a later run of the same job started here since.
   */
  interruptRun(run: RunSignal, kind: InterruptionKind): void {
    run.interrupt(kind);
  }

  /** Interrupts every run held here (a shutdown whose grace is over); returns how many. */
  interruptAll(kind: InterruptionKind): number {
    for (const run of this.runs.values()) run.interrupt(kind);
    return this.runs.size;
  }
}
