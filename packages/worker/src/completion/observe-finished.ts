import { finishedRequestOf, type JobData, type JobOutcome, type RequestObserver } from "@cascade/shared";
import type { Job } from "bullmq";

/**
 * Tells `observer` (usage, dashboard, alert counts) of a job that ended at `finishedAtMs`: the one
 * rule for when it started, used by the worker that ended it and by the failed-jobs sweep.
 */
export function observeFinishedJob(
  observer: RequestObserver | undefined,
  job: Job<JobData, JobOutcome>,
  data: JobData,
  outcome: JobOutcome,
  finishedAtMs: number,
  /**
   * What calls earlier runs' processes left in flight came to (the progress's `lost_usd`): in the
   * outcome's cost, but counted by those processes' recovery (or their own stray charge).
   */
  lostUsd = 0,
): void {
  if (!observer) return;
  // BullMQ sets processedOn at every activation: a job that waited for a limit (or was
  // recovered) first started at its outcome's started_at (whole seconds), not then.
  const firstStartMs = outcome.started_at !== undefined ? outcome.started_at * 1000 : undefined;
  const startedAtMs =
    job.processedOn !== undefined && (firstStartMs === undefined || job.processedOn < firstStartMs + 1000)
      ? job.processedOn
      : firstStartMs;
  observer.finished(
    finishedRequestOf(
      "job",
      data,
      lostUsd > 0 ? { ...outcome, cost_usd: Math.max(0, outcome.cost_usd - lostUsd) } : outcome,
      {
        createdAtMs: job.timestamp,
        ...(startedAtMs !== undefined ? { startedAtMs } : {}),
        finishedAtMs,
      },
    ),
  );
}
