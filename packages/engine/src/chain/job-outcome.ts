import { type JobError, type JobOutcome, type JobProgress, unixSeconds } from "@cascade/shared";

// Every terminal outcome of a job is built here, so that each one carries the same record of
// what the job did: its attempts, what it spent and when it first started (all from its
// progress; a job that never ran has none of them).

/** The job's answer: the chat.completion of the hop that succeeded. */
export function succeededOutcome(
  progress: JobProgress,
  model: string,
  provider: string,
  result: Record<string, unknown>,
  now: number,
): JobOutcome {
  return {
    status: "succeeded",
    model,
    provider,
    result,
    cost_usd: progress.cost_usd,
    attempts: progress.attempts,
    // A running chain always has its start (ChainProgress sets it): no conditional spread here,
    // on every job's path.
    started_at: progress.started_at,
    finished_at: unixSeconds(now),
  };
}

/** The job ended without an answer: `error.type` says why (all_models_failed, bad_request, ...). */
export function failedOutcome(progress: JobProgress | undefined, error: JobError, now: number): JobOutcome {
  return {
    status: "failed",
    cost_usd: progress?.cost_usd ?? 0,
    attempts: progress?.attempts ?? [],
    error,
    ...(progress?.started_at !== undefined ? { started_at: progress.started_at } : {}),
    finished_at: unixSeconds(now),
  };
}

/** The job was cancelled, running or not; what it had done and spent stays on record. */
export function cancelledOutcome(progress: JobProgress | undefined, now: number): JobOutcome {
  return {
    status: "cancelled",
    cost_usd: progress?.cost_usd ?? 0,
    attempts: progress?.attempts ?? [],
    error: { type: "cancelled", message: "the job was cancelled" },
    ...(progress?.started_at !== undefined ? { started_at: progress.started_at } : {}),
    finished_at: unixSeconds(now),
  };
}

/** Job data that fails validation when dequeued: nothing ran, and running it again cannot help. */
export function invalidJobOutcome(issues: string, now: number): JobOutcome {
  return failedOutcome(
    undefined,
    { type: "invalid_job", message: `job data failed validation: ${issues}` },
    now,
  );
}
