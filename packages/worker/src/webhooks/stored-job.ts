import type { CompletionQueue, JobObject, Keys, RedisClient } from "@cascade/shared";
import { isTerminalJob, readJob } from "@cascade/shared/bullmq";

/** What Redis holds for a job a delivery reports on. */
export type StoredJobLookup =
  /** The job has ended: `job` is what GET /v1/jobs/:id shows; `endedAt` in ms. */
  | { kind: "terminal"; job: JobObject; endedAt: number }
  /** The job exists but has not ended in Redis yet (a run's result is not stored yet). */
  | { kind: "not_terminal" }
  /** Neither the job nor a cancelled record exists (expired after its retention, or never was). */
  | { kind: "missing" };

export interface StoredJobReader {
  read(jobId: string): Promise<StoredJobLookup>;
}

/**
 * Reads a job as GET /v1/jobs/:id does (the BullMQ job through `toJobObject`, else the record
 * of a job cancelled while queued), for webhook deliveries: a webhook carries the stored job, so
 * what a receiver is told and what the API shows are the same whichever run enqueued it.
 */
export function createStoredJobReader(options: {
  connection: RedisClient;
  keys: Keys;
  /** The completion queue the jobs are on (read only). */
  queue: CompletionQueue;
}): StoredJobReader {
  const { connection, keys, queue } = options;
  return {
    async read(jobId) {
      const read = await readJob(queue, connection, keys, jobId);
      if (!read) return { kind: "missing" };
      if (!isTerminalJob(read.job)) return { kind: "not_terminal" };
      const endedAt =
        (read.kind === "queued_job" ? read.stored.finishedOn : undefined) ??
        (read.job.finished_at ?? 0) * 1000;
      return { kind: "terminal", job: read.job, endedAt };
    },
  };
}
