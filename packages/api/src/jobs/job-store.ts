import {
  type CreateJobBody,
  completionJobOptions,
  FAIR_PLACEHOLDER_PRIORITY,
  FairTags,
  fairJobData,
  type JobData,
  type JobObject,
  type JobOutcome,
  type Keys,
  QUEUE_NAMES,
  type RedisClient,
  type TenantWeights,
} from "@cascade/shared";
import { isTerminalJob, readJob } from "@cascade/shared/bullmq";
import { createIORedisClient, type IRedisTransaction, Job, type Queue } from "bullmq";

export const isTerminal = isTerminalJob;

export type CancelResult =
  | { kind: "cancelled"; job: JobObject }
  | { kind: "requested"; job: JobObject }
  | { kind: "terminal"; job: JobObject };

interface CancelledRecord {
  tenant: string;
  job: JobObject;
}

/**
 * Jobs as the API sees them: BullMQ is the store (job data + return value), plus a small record
 * for jobs cancelled while queued, whose BullMQ job is removed.
 */
export class JobStore {
  private readonly fairTags: FairTags;
  /** BullMQ's wrapper of the queue's own connection (the same object its Queue uses). */
  private readonly client: { multi(): IRedisTransaction };

  constructor(
    private readonly queue: Queue<JobData, JobOutcome>,
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
    /** Tenants' fair-share weights (default 1 each). */
    weights?: TenantWeights,
  ) {
    this.fairTags = new FairTags(redis, keys, weights);
    this.client = createIORedisClient(redis as never);
  }

  /**
   * Queues the job behind its tenant's earlier jobs of the same priority, in weighted round robin
   * with other tenants (its BullMQ priority is its fair-share tag; `priority` stays in its data).
   * One round trip: BullMQ's own add, at a placeholder priority, and the script that moves the job
   * to its tag, in one MULTI (docs/decisions/0021-one-round-trip-per-enqueue.md).
   */
  async add(jobId: string, data: JobData, body: Pick<CreateJobBody, "priority">): Promise<void> {
    const transaction = this.client.multi();
    const options = completionJobOptions({ jobId, queuePriority: FAIR_PLACEHOLDER_PRIORITY });
    const job = new Job(
      this.queue,
      QUEUE_NAMES.completions,
      fairJobData(data),
      { ...this.queue.defaultJobOptions, ...options },
      jobId,
    );
    // Queued synchronously; its reply is read from the EXEC below (as BullMQ's own addBulk does).
    job.addJob(transaction).catch(() => {});
    this.fairTags.queuePlace(transaction, data.tenant, body.priority, jobId);
    const replies = await transaction.exec();
    if (!replies) throw new Error(`job ${jobId}: the MULTI adding it was discarded`);
    const [added, placed] = replies;
    if (added?.[0]) throw added[0];
    if (typeof added?.[1] === "number" && added[1] < 0) {
      throw new Error(`job ${jobId}: BullMQ's add refused it (code ${added[1]})`);
    }
    // The add happened but its placement did not (say, the script cache was flushed under the
    // MULTI): place it on its own now, or it would wait at the back of the line.
    if (!placed || placed[0]) await this.fairTags.place(data.tenant, body.priority, jobId);
  }

  /** Whether the job asked for a streamed completion (its events live in a Redis stream). */
  async isStreaming(jobId: string): Promise<boolean> {
    const job = await Job.fromId<JobData, JobOutcome>(this.queue, jobId);
    return job?.data?.request?.stream === true;
  }

  /** The job object if the job exists and belongs to `tenant`; undefined otherwise (a 404). */
  async get(tenant: string, jobId: string): Promise<JobObject | undefined> {
    const read = await readJob(this.queue, this.redis, this.keys, jobId);
    return read?.tenant === tenant ? read.job : undefined;
  }

  /**
   * Cancels a job: a queued one is removed at once and kept as a cancelled record; a running
   * one (locked by a worker) is asked to abort through pub/sub and ends cancelled shortly.
   */
  async cancel(tenant: string, jobId: string, now: number): Promise<CancelResult | undefined> {
    const read = await readJob(this.queue, this.redis, this.keys, jobId);
    if (read?.tenant !== tenant) return undefined;
    if (read.kind === "cancelled_record") return { kind: "terminal", job: read.job };
    const { stored, job: current } = read;
    if (isTerminal(current)) return { kind: "terminal", job: current };
    if (stored.state !== "active") {
      const cancelled: JobObject = {
        ...current,
        status: "cancelled",
        finished_at: Math.floor(now / 1000),
        error: { type: "cancelled", message: "the job was cancelled before it finished" },
      };
      const key = this.keys.cancelledJob(jobId);
      // The record goes first: once the BullMQ job is gone, readers must find it.
      await this.redis.set(
        key,
        JSON.stringify({ tenant, job: cancelled } satisfies CancelledRecord),
        "EX",
        this.retentionSeconds,
      );
      // Look again right before removing: BullMQ's remove only refuses a locked job, so one that
      // a worker picked up and finished since the first read must not be removed.
      const state = await this.queue.getJobState(jobId);
      const removable = state === "waiting" || state === "prioritized" || state === "delayed";
      const removed = removable ? await this.queue.remove(jobId).catch(() => 0) : 0;
      if (removed === 1) return { kind: "cancelled", job: cancelled };
      await this.redis.del(key);
      if (state === "completed" || state === "failed") {
        const ended = await this.get(tenant, jobId);
        if (ended) return { kind: "terminal", job: ended };
      }
      // It was picked up meanwhile: cancel it as a running job.
    }
    // Kept in Redis too, so a job that is between runs now (waiting for a limit, or recovered after
    // a crash) is cancelled when it starts again, on whichever worker; the message reaches the
    // worker running it now.
    await this.redis.set(this.keys.cancelRequest(jobId), "1", "EX", this.retentionSeconds);
    await this.redis.publish(this.keys.cancelChannel, jobId);
    return { kind: "requested", job: { ...current, status: "running" } };
  }
}
