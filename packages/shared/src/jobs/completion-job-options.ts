import type { JobsOptions } from "bullmq";

/**
 * BullMQ options of every completion job, from POST /v1/jobs and from batch lines alike, so both
 * get the same second chances. `attempts`/`backoff` cover only unexpected errors (a Redis blip
 * mid-job): the chain's own retries and fallbacks never throw, and waiting in the delayed set
 * uses no attempt.
 *
 * `queuePriority` is BullMQ's priority, not the job's own `priority` (1..10, kept in its data):
 * its fair-share tag (FairTags.priorities, docs/decisions/0019-fair-share-on-bullmq-priorities.md).
 */
export function completionJobOptions(job: { jobId: string; queuePriority: number }): JobsOptions {
  return {
    jobId: job.jobId,
    priority: job.queuePriority,
    attempts: 3,
    backoff: { type: "exponential", delay: 1000 },
  };
}
