/**
 * Whether BullMQ's `failed` event means the job will not run again: it has a finish time (no
 * attempts left, or failed for stalling too often, which bullmq 6 reports as an
 * UnrecoverableError without using up attempts), or its attempts are used up.
 */
export function endedForGood(job: {
  finishedOn?: number;
  attemptsMade: number;
  opts: { attempts?: number };
}): boolean {
  return job.finishedOn !== undefined || job.attemptsMade >= (job.opts.attempts ?? 1);
}
