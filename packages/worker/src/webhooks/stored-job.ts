import {
  type CompletionQueue,
  type JobData,
  type JobObject,
  type JobOutcome,
  jobDataSchema,
  jobOutcomeSchema,
  type Keys,
  parseJobProgress,
  type RedisClient,
  toJobObject,
} from "@cascade/shared";
import { Job } from "bullmq";
import { z } from "zod";

/** What Redis holds for a job a delivery reports on. */
export type StoredJobLookup =
  /** The job has ended: `job` is what GET /v1/jobs/:id shows; `endedAt` in ms. */
  | { kind: "terminal"; job: JobObject; endedAt: number }
  /** The job exists but has not ended in Redis yet (a run's result is not stored yet). */
  | { kind: "not_terminal" }
  /** Neither the job nor a cancelled record exists (expired after its retention, or never was). */
  | { kind: "missing" };

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** The API's record of a job cancelled while queued (its BullMQ job is removed). */
const cancelledRecordSchema = z.object({
  tenant: z.string(),
  job: z.looseObject({ status: z.string(), finished_at: z.number().nullable().optional() }),
});

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
      const job = await Job.fromId<JobData, JobOutcome>(queue, jobId);
      if (job) {
        const data = jobDataSchema.safeParse(job.data);
        if (!data.success) return { kind: "missing" };
        const outcome = jobOutcomeSchema.safeParse(job.returnvalue);
        const object = toJobObject({
          id: jobId,
          data: data.data,
          progress: parseJobProgress(job.progress),
          state: await job.getState(),
          outcome: outcome.success ? outcome.data : undefined,
          processedOn: job.processedOn,
          finishedOn: job.finishedOn,
          failedReason: job.failedReason,
        });
        if (!TERMINAL.has(object.status)) return { kind: "not_terminal" };
        const endedAt = job.finishedOn ?? (object.finished_at ?? 0) * 1000;
        return { kind: "terminal", job: object, endedAt };
      }
      const raw = await connection.get(keys.cancelledJob(jobId));
      if (!raw) return { kind: "missing" };
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        return { kind: "missing" };
      }
      const record = cancelledRecordSchema.safeParse(parsed);
      if (!record.success || !TERMINAL.has(record.data.job.status)) return { kind: "missing" };
      return {
        kind: "terminal",
        job: record.data.job as unknown as JobObject,
        endedAt: (record.data.job.finished_at ?? 0) * 1000,
      };
    },
  };
}
