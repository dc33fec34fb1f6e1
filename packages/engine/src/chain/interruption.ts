/** Why a running job's signal was aborted from outside its chain. */
export type InterruptionKind = "cancelled" | "lock_lost" | "shutdown";

/** The abort reason used for a job's own signal, so the runner can tell it from a hop timeout. */
export class JobInterruption extends Error {
  constructor(readonly kind: InterruptionKind) {
    super(`job interrupted: ${kind}`);
    this.name = "JobInterruption";
  }
}

export function interruptionOf(signal: AbortSignal): JobInterruption | undefined {
  return signal.aborted && signal.reason instanceof JobInterruption ? signal.reason : undefined;
}
