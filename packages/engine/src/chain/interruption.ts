import type { ChainContext, ChainResult } from "./chain-context.js";
import type { ChainProgress } from "./chain-progress.js";
import { cancelledOutcome } from "./job-outcome.js";

/** Why a running job's signal was aborted from outside its chain. */
export type InterruptionKind = "cancelled" | "lock_lost" | "shutdown";

/** The abort reason used for a job's own signal, so the runner can tell it from a hop timeout. */
export class JobInterruption extends Error {
  constructor(readonly kind: InterruptionKind) {
    super(`job interrupted: ${kind}`);
    this.name = "JobInterruption";
  }
}

/**
 * Thrown out of a run that lost its job's lock: another run owns the job now. Carries what this
 * run's progress had been charged in all (USD), so the worker can count what was never saved.
 */
export class RunLostLock extends JobInterruption {
  /** `model`: the model of the hop the run was on (whose call it last paid for). */
  constructor(
    readonly costUsd: number,
    readonly model: string | undefined,
  ) {
    super("lock_lost");
    this.name = "RunLostLock";
  }
}

export function interruptionOf(signal: AbortSignal): JobInterruption | undefined {
  return signal.aborted && signal.reason instanceof JobInterruption ? signal.reason : undefined;
}

/**
 * The one place an interrupted run becomes its result. Cancelled: the job ends cancelled; a call
 * stopped after it was sent is among its attempts (outcome `error`, no reason of the contract's,
 * a message saying why), since it was charged. Shutdown: the job is handed back at once, its progress (the stopped call's
 * charge included) saved for the run that resumes it. Lock lost: thrown on (RunLostLock), since
 * another run owns the job and its progress now (the call's charge is in the tenant's budget,
 * settled already; the worker counts what was never saved as a stray charge).
 */
export async function interruptedResult(
  interruption: JobInterruption,
  run: ChainProgress,
  context: ChainContext,
): Promise<ChainResult> {
  const now = context.clock.now();
  if (interruption.kind === "cancelled") {
    return { kind: "finished", outcome: cancelledOutcome(run.progress, now) };
  }
  if (interruption.kind === "lock_lost") {
    throw new RunLostLock(run.progress.cost_usd, context.data.chain[run.progress.hop]?.model);
  }
  try {
    return await run.defer(now);
  } catch (error) {
    // Handing the job back matters more: the run that resumes it starts from the last save.
    context.logger.error(
      { job_id: context.jobId, err: (error as Error).message, cost_usd: run.progress.cost_usd },
      "could not save the job's progress on shutdown",
    );
    return { kind: "deferred", until: now, progress: run.progress };
  }
}
