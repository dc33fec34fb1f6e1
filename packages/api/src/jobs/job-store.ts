import {
  BatchStore,
  type CreateJobBody,
  FairTags,
  type JobData,
  type JobObject,
  type JobOutcome,
  type JobProgress,
  type Keys,
  type RedisClient,
  stopLine,
  type TenantWeights,
  toJobObject,
} from "@cascade/shared";
import { isTerminalJob, readJob } from "@cascade/shared/bullmq";
import type { Queue } from "bullmq";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";
import { FairEnqueue } from "./fair-enqueue.js";

export const isTerminal = isTerminalJob;

export type CancelResult =
  /**
   * Cancelled here, no worker holding it: `data` and the job's first start, to count it by;
   * `wasRunning`: it was shown running (between tries, after an attempt), not queued.
   */
  | {
      kind: "cancelled";
      job: JobObject;
      data: JobData;
      wasRunning: boolean;
      startedAtMs?: number;
      /** What calls earlier runs left in flight came to (in the job's cost; their recovery counted it). */
      lostUsd: number;
    }
  | { kind: "requested"; job: JobObject }
  | { kind: "terminal"; job: JobObject };

interface CancelledRecord {
  tenant: string;
  job: JobObject;
  /** The job asked for a streamed completion: its events stay numbered as a stream's. */
  streaming?: true;
}

/**
 * Jobs as the API sees them: BullMQ is the store (job data + return value), plus a small record
 * for jobs cancelled while queued, whose BullMQ job is removed.
 */
export class JobStore {
  private readonly enqueue: FairEnqueue;
  private readonly batches: BatchStore;

  constructor(
    private readonly queue: Queue<JobData, JobOutcome>,
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
    /** Tenants' fair-share weights (default 1 each). */
    weights?: TenantWeights,
    /** Told when enqueueing cannot take its one-script path (see FairEnqueue). */
    private readonly warn?: (message: string) => void,
    /**
     * A job's progress with the calls its stalled runs left in flight recorded in it (ADR 0033),
     * for a job removed from the queue without another run.
     */
    private readonly withLostCalls?: (
      jobId: string,
      progress: JobProgress | undefined,
    ) => Promise<JobProgress | undefined>,
  ) {
    this.enqueue = new FairEnqueue(queue, redis, new FairTags(redis, keys, weights), warn);
    this.batches = new BatchStore(redis, keys, retentionSeconds);
  }

  /**
   * Queues the job behind its tenant's earlier jobs of the same priority, in weighted round robin
   * with other tenants (its BullMQ priority is its fair-share tag; `priority` stays in its data).
   * One round trip, one script: BullMQ's own add, at a placeholder priority, then the move to the
   * job's tag (FairEnqueue, docs/decisions/0021-one-round-trip-per-enqueue.md).
   */
  async add(jobId: string, data: JobData, body: Pick<CreateJobBody, "priority">): Promise<void> {
    await this.enqueue.add(jobId, data, body.priority);
  }

  /**
   * The job object and whether it asked for a streamed completion (its events live in a Redis
   * stream, a cancelled one's too) if the job exists and belongs to `tenant`; undefined otherwise.
   */
  async read(tenant: string, jobId: string): Promise<{ job: JobObject; streaming: boolean } | undefined> {
    const read = await readJob(this.queue, this.redis, this.keys, jobId);
    return read?.tenant === tenant ? { job: read.job, streaming: read.streaming } : undefined;
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
  async cancel(
    tenant: string,
    jobId: string,
    now: number,
    /**
     * Called with the cancelled job once its record is written and before the BullMQ job is
     * removed (queues its `job.cancelled` webhook): when it throws, nothing is cancelled.
     */
    beforeRemove?: (cancelled: JobObject) => Promise<unknown>,
  ): Promise<CancelResult | undefined> {
    const read = await readJob(this.queue, this.redis, this.keys, jobId);
    if (read?.tenant !== tenant) return undefined;
    if (read.kind === "cancelled_record") return { kind: "terminal", job: read.job };
    const { stored } = read;
    let current = read.job;
    if (isTerminal(current)) return { kind: "terminal", job: current };
    if (stored.state !== "active") {
      // A run of it stalled (its worker died): the calls that run left in flight are the job's
      // attempts and cost, as a run taking it over would record them.
      // (The progress may be changed in place: the job object is made again from it either way.)
      if ((stored.stalledCounter ?? 0) > 0 && this.withLostCalls) {
        stored.progress = await this.withLostCalls(jobId, stored.progress);
        current = toJobObject(stored);
      }
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
        JSON.stringify({
          tenant,
          job: cancelled,
          ...(read.streaming ? { streaming: true as const } : {}),
        } satisfies CancelledRecord),
        "EX",
        this.retentionSeconds,
      );
      // The webhook is queued before the job goes, so a cancel answered 200 always notifies
      // (queued after, a Redis blip lost it for good). Should the job not be removed after all,
      // the delivery waits for the job's own end and tells that (its id is the job's: one delivery).
      if (beforeRemove) {
        try {
          await beforeRemove(cancelled);
        } catch (error) {
          await this.redis.del(key).catch(() => {});
          throw error;
        }
      }
      // Look again right before removing: BullMQ's remove only refuses a locked job, so one that
      // a worker picked up and finished since the first read must not be removed.
      const state = await this.queue.getJobState(jobId);
      const removable = state === "waiting" || state === "prioritized" || state === "delayed";
      // A remove refused (the job was just locked) is 0; one Redis did not answer may still run:
      // the record stays (the job, while it exists, is what readers see) and the client gets 503.
      const removed = removable
        ? await this.queue.remove(jobId).catch((error: unknown) => {
            if (isRedisUnavailableError(error)) throw error;
            return 0;
          })
        : 0;
      if (removed === 1) {
        // A batch line's job ends here, not in a worker: its line is recorded now (an error line,
        // `cancelled`), so the batch can finish. Should this fail, the batch sweeper records it
        // from the job's absence (BatchSweeper.reconcile).
        const line = stored.data.batch;
        if (line) {
          await this.batches
            .endLines({ id: line.id, tenant }, [stopLine(line.id, line.line, line.custom_id)])
            .catch((error: unknown) =>
              this.warn?.(
                `could not record batch ${line.id}'s line ${line.line} as cancelled (a sweeper will): ${String(error)}`,
              ),
            );
        }
        return {
          kind: "cancelled",
          job: cancelled,
          data: stored.data,
          // As it was shown: a stalled run's calls recorded just now make no run of it.
          wasRunning: read.job.status === "running",
          ...(cancelled.started_at != null ? { startedAtMs: cancelled.started_at * 1000 } : {}),
          lostUsd: stored.progress?.lost_usd ?? 0,
        };
      }
      // Gone already: another cancel of it (two DELETEs at once, an SDK's retry) removed it first
      // and answered 200; its record (this one wrote the same) stands, and this one is told it ended.
      if (state === "unknown") return { kind: "terminal", job: cancelled };
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
    // A run whose call had answered records its result whatever the request says: one that ended
    // while this was asked is told as ended (409), not as a cancel under way that never comes (an
    // audit saw 202 answers for 4 of 30 jobs that then succeeded). One ending after this read
    // still may: cancelling a running job is best effort.
    const after = await this.get(tenant, jobId);
    if (after?.status === "cancelled") return { kind: "requested", job: after };
    if (after && isTerminal(after)) {
      await this.forgetCancelRequest(jobId);
      return { kind: "terminal", job: after };
    }
    return { kind: "requested", job: { ...current, status: "running" } };
  }

  /** Drops a running job's cancel request (it ended before the cancel reached its run). */
  async forgetCancelRequest(jobId: string): Promise<void> {
    await this.redis.del(this.keys.cancelRequest(jobId));
  }
}
