import { type Attempt, type JobProgress, unixSeconds } from "@cascade/shared";
import type { LostCall } from "../resilience/resilience.js";
import { logAttempt } from "./attempt-log.js";
import type { ChainContext, ChainResult } from "./chain-context.js";
import type { ContinuedAnswer } from "./continuation.js";

/** Sums USD amounts without letting binary float noise pile up over many calls. */
function addUsd(total: number, amount: number): number {
  return Math.round((total + amount) * 1e10) / 1e10;
}

/** What `recordLostCalls` reads of the run: the chain's context, or a worker's ending a job without one. */
export type LostCallsContext = Pick<ChainContext, "jobId" | "config" | "clock" | "logger" | "events">;

/**
 * Calls earlier runs made and never settled, their processes killed or stopped past the lock:
 * attempts of the job like any call (with no reason: they say nothing of the provider, as a call
 * stopped by a lost lock), charged in its cost at their estimates, as the dead process's recovery
 * charges its tenant. Named in `counted_calls`, so no later run counts one again. Changes
 * `progress` in place; says whether it recorded any. A run of its chain records them first; a run
 * that finds its job cancelled records them before ending it.
 */
export function recordLostCalls(
  progress: JobProgress,
  lost: readonly LostCall[],
  context: LostCallsContext,
): boolean {
  if (lost.length === 0) return false;
  const nowMs = context.clock.now();
  const known = new Set(progress.counted_calls);
  let recorded = false;
  for (const call of lost) {
    if (known.has(call.id)) continue;
    known.add(call.id);
    const attempt: Attempt = {
      model: call.model,
      // An entry written before entries named their provider: the model's, as configured.
      provider:
        call.provider === "unknown"
          ? (context.config.file.models[call.model]?.provider ?? call.provider)
          : call.provider,
      ...(call.deployment !== undefined ? { deployment: call.deployment } : {}),
      outcome: "error",
      message:
        "the worker running this call stopped before it answered (killed, or paused past its lock); charged at its estimate",
      // How long the job knew it in flight: from its request to this run taking the job over.
      duration_ms: Math.max(0, nowMs - call.startedMs),
      started_at: unixSeconds(call.startedMs),
    };
    // Not logged or counted as a hop's try (its duration is the wait for the takeover, not a
    // call's): one line says what was found, and live readers get the attempt.
    progress.attempts.push(attempt);
    recorded = true;
    context.events?.attempt(attempt);
    context.logger.warn(
      {
        job_id: context.jobId,
        current_model: attempt.model,
        provider: attempt.provider,
        cost_usd: call.costUsd,
        call: call.id,
      },
      "a call an earlier run of this job left in flight (its worker stopped) is counted in the job's attempts and cost",
    );
    if (call.costUsd > 0) progress.cost_usd = addUsd(progress.cost_usd, call.costUsd);
    progress.lost_usd = addUsd(progress.lost_usd ?? 0, call.costUsd);
  }
  progress.counted_calls = [...known];
  progress.started_at = Math.min(
    progress.started_at ?? Number.POSITIVE_INFINITY,
    ...lost.map((call) => unixSeconds(call.startedMs)),
  );
  return recorded;
}

/**
 * `progress` with `lost` recorded in it (`recordLostCalls`; changed in place), or a new progress
 * holding them when the job had none: for whatever ends a job without running its chain (a run
 * that finds it cancelled, the API removing it from the queue).
 */
export function withLostCalls(
  progress: JobProgress | undefined,
  lost: readonly LostCall[],
  context: LostCallsContext,
): JobProgress | undefined {
  if (lost.length === 0) return progress;
  const recorded = progress ?? { hop: 0, tries: 0, attempts: [], cost_usd: 0 };
  return recordLostCalls(recorded, lost, context) ? recorded : progress;
}

/**
 * One run's progress through its chain, and the one place it is saved. A save writes only what
 * changed since the last one: a run that finishes writes nothing (its outcome carries it all),
 * and a job waiting again for the same limit has nothing new to save.
 */
export class ChainProgress {
  readonly progress: JobProgress;
  /** Set once a stream the caller had seen part of broke off and the chain continues it. */
  continued: ContinuedAnswer | undefined;
  /** Journal fields of this run's calls charged to the job since its last save (see `save`). */
  private chargedCalls: string[] | undefined;
  /** Changed since it was last saved (or since the run began). */
  private dirty = false;
  /** Never saved yet: a first run saves its start before it waits, so a resumed run keeps it. */
  private fresh: boolean;
  /** The hop a run resumed from saved progress starts at (it waited there before), else -1. */
  readonly resumedAtHop: number;
  /** The saved progress holds a place in line (so using it up must be saved too). */
  private savedReservation: boolean;

  constructor(private readonly context: ChainContext) {
    if (context.progress) {
      this.progress = context.progressOwned ? context.progress : structuredClone(context.progress);
      this.progress.started_at ??= unixSeconds(context.clock.now());
    } else {
      // Built whole (one shape, no property added later): every job's first run makes one.
      this.progress = {
        hop: 0,
        tries: 0,
        attempts: [],
        cost_usd: 0,
        started_at: unixSeconds(context.clock.now()),
      };
    }
    this.fresh = context.progress === undefined;
    this.resumedAtHop = context.progress?.hop ?? -1;
    this.savedReservation = context.progress?.reservation !== undefined;
    if (context.lostCalls?.length) this.recordLostCalls(context.lostCalls);
  }

  /** Calls earlier runs left in flight, put in the job's attempts and cost (`recordLostCalls`). */
  private recordLostCalls(lost: readonly LostCall[]): void {
    if (recordLostCalls(this.progress, lost, this.context)) this.dirty = true;
  }

  /** Records an attempt of the current hop: kept in progress, logged, announced to live readers. */
  record(attempt: Attempt): void {
    this.progress.attempts.push(attempt);
    this.dirty = true;
    logAttempt(this.context, attempt, this.progress.hop);
    this.context.events?.attempt(attempt);
  }

  addCost(usd: number): void {
    if (usd <= 0) return;
    this.progress.cost_usd = addUsd(this.progress.cost_usd, usd);
    this.dirty = true;
  }

  /** Whether anything changed since the last save (checked first: most tries have nothing to save). */
  get unsaved(): boolean {
    return this.dirty;
  }

  /**
   * A call of this run, with this journal entry, was charged to the job (`addCost`): a save names
   * it in `counted_calls`, since the entry's removal (its settlement) may reach Redis after the
   * save, and a run taking the job over must not count the call again as one left in flight.
   */
  callCharged(journalField: string): void {
    if (this.chargedCalls) this.chargedCalls.push(journalField);
    else this.chargedCalls = [journalField];
  }

  /** Saves attempts made since the last save, so a crash from here on does not repeat them. */
  async save(): Promise<void> {
    const instanceId = this.context.resilience?.journal.instanceId;
    if (this.chargedCalls && instanceId !== undefined) {
      const counted = this.progress.counted_calls ?? [];
      for (const field of this.chargedCalls) counted.push(`${instanceId}/${field}`);
      this.progress.counted_calls = counted;
      this.chargedCalls = undefined;
    }
    await this.context.saveProgress(this.progress);
    this.savedReservation = this.progress.reservation !== undefined;
    this.dirty = false;
    this.fresh = false;
  }

  /**
   * A deployment of the current hop's pooled model failed: the hop's next pick passes it over.
   * Returns the hop's failed deployments so far.
   */
  deploymentFailed(deployment: string): readonly string[] {
    const failed = this.progress.failed_deployments ?? [];
    failed.push(deployment);
    this.progress.failed_deployments = failed;
    this.dirty = true;
    return failed;
  }

  /** The hop is tried again from the start (a retry), or the chain moves on: any deployment may answer. */
  clearFailedDeployments(): void {
    if (this.progress.failed_deployments === undefined) return;
    delete this.progress.failed_deployments;
    this.dirty = true;
  }

  /** Holds a place in line (kept in progress; saved when the job is handed back to wait for it). */
  hold(reservation: NonNullable<JobProgress["reservation"]>): void {
    this.progress.reservation = reservation;
  }

  /** The place in line is used (or lost): a resumed run must not call on it again. */
  release(): void {
    if (!this.progress.reservation) return;
    delete this.progress.reservation;
    if (this.savedReservation) this.dirty = true;
  }

  /** The times in a row the job waited for a tpm bucket at the current hop (`tpm_waits`). */
  get tpmWaits(): number {
    return this.progress.tpm_waits ?? 0;
  }

  /** Sets the count of waits for a tpm bucket in a row (0 ends it: the hop was admitted or left). */
  setTpmWaits(count: number): void {
    if (count === this.tpmWaits) return;
    if (count > 0) this.progress.tpm_waits = count;
    else delete this.progress.tpm_waits;
    this.dirty = true;
  }

  /** Hands the job back until `until`, its progress saved for the run that resumes it. */
  async defer(until: number): Promise<ChainResult> {
    if (this.dirty || this.fresh || this.progress.reservation) await this.save();
    return { kind: "deferred", until, progress: this.progress };
  }
}
