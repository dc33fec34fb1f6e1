import { Job } from "bullmq";
import { z } from "zod";
import type { CompletionQueue } from "../batches/batch-drain.js";
import { isJobId } from "../ids.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import {
  type JobData,
  type JobObject,
  type JobOutcome,
  jobOutcomeSchema,
  parseJobProgress,
  storedJobDataSchema,
} from "../schemas/job.js";
import { type StoredJob, toJobObject } from "../schemas/job-view.js";

const TERMINAL_STATUSES = new Set(["succeeded", "failed", "cancelled"]);

/** Whether a job object is in a final status. */
export const isTerminalJob = (job: Pick<JobObject, "status">): boolean => TERMINAL_STATUSES.has(job.status);

/** The record the API keeps of a job cancelled while queued (its BullMQ job is removed). */
const cancelledRecordSchema = z.object({
  tenant: z.string(),
  job: z.looseObject({ status: z.string(), finished_at: z.number().nullable().optional() }),
  /** The job asked for a streamed completion: its events are numbered as a stream's, after the cancel too. */
  streaming: z.boolean().optional(),
});

export type JobRead =
  /** The BullMQ job: what is stored, and the job object GET /v1/jobs/:id shows. */
  (
    | { kind: "queued_job"; tenant: string; stored: StoredJob; job: JobObject }
    /** A job cancelled while queued, from its cancelled record. */
    | { kind: "cancelled_record"; tenant: string; job: JobObject }
  ) & {
    /** The job asked for a streamed completion (its events live in a Redis stream). */
    streaming: boolean;
  };

/**
 * Reads a job the one way GET /v1/jobs/:id and webhook deliveries both show it: the BullMQ job
 * through `toJobObject`, else the record of a job cancelled while queued. Undefined when neither
 * exists (never was, or expired after its retention), what is stored does not parse, or the id
 * is not a job's (isJobId).
 */
export async function readJob(
  queue: CompletionQueue,
  redis: RedisClient,
  keys: Keys,
  jobId: string,
): Promise<JobRead | undefined> {
  if (!isJobId(jobId)) return undefined;
  // The state first, then the job's hash: a job moves on between the two reads (a worker takes it,
  // or finishes it), and what the hash holds then is at least as far along as the state. Read the
  // other way round, a job finished in between was a hash with no answer in state `completed`,
  // shown `queued` after a read had shown it `running`; one taken in between, `running` with no
  // start time. BullMQ writes a job's state and its hash's fields in one script each time.
  const state = await queue.getJobState(jobId);
  const job = await Job.fromId<JobData, JobOutcome>(queue, jobId);
  if (job) {
    const data = storedJobDataSchema.safeParse(job.data);
    if (!data.success) return undefined;
    const outcome = jobOutcomeSchema.safeParse(job.returnvalue);
    const stored: StoredJob = {
      id: jobId,
      data: data.data,
      progress: parseJobProgress(job.progress),
      // A hash read after its state was gone (`unknown`: it came back meanwhile) is read as it is.
      state: state === "unknown" ? await job.getState() : state,
      outcome: outcome.success ? outcome.data : undefined,
      processedOn: job.processedOn,
      finishedOn: job.finishedOn,
      failedReason: job.failedReason,
      stalledCounter: job.stalledCounter,
    };
    return {
      kind: "queued_job",
      tenant: data.data.tenant,
      stored,
      job: toJobObject(stored),
      streaming: data.data.request.stream === true,
    };
  }
  const raw = await redis.get(keys.cancelledJob(jobId));
  if (!raw) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const record = cancelledRecordSchema.safeParse(parsed);
  if (!record.success) return undefined;
  return {
    kind: "cancelled_record",
    tenant: record.data.tenant,
    job: record.data.job as unknown as JobObject,
    streaming: record.data.streaming === true,
  };
}
