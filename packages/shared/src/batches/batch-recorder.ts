import type { Worker } from "bullmq";
import { endedForGood } from "../jobs/ended-for-good.js";
import type { Logger } from "../logger.js";
import type { JobData, JobOutcome } from "../schemas/job.js";
import type { BatchStore } from "./batch-store.js";
import { failedLine, type LineEnd, lineEndOf } from "./output-lines.js";

export interface BatchRecorder {
  /**
   * Records the lines of `worker`'s jobs once BullMQ has stored how they ended: on `completed`
   * the output or error line of the stored outcome, on `failed` (no attempts left, or stalled too
   * often) an `internal_error` line. One Lua call per line (jobs without `data.batch` cost
   * nothing), and a line is recorded at most once. Recording only after the result is stored
   * means a run that lost its lock (its result refused by BullMQ) records nothing, and the line
   * is always what GET /v1/jobs/:request_id shows. Never throws: a line it could not record (the
   * process died in between, Redis failed three times) is picked up by a sweeper from the job's
   * stored outcome.
   */
  watch(worker: Worker<JobData, JobOutcome>): void;
  /** Resolves once every line this recorder has started recording is recorded (or given up). */
  drain(): Promise<void>;
}

const TRIES = 3;

export function createBatchRecorder(options: { store: BatchStore; logger: Logger }): BatchRecorder {
  const { store, logger } = options;

  const record = async (jobId: string, data: JobData, end: LineEnd): Promise<void> => {
    const batch = data.batch;
    if (!batch) return;
    for (let attempt = 1; attempt <= TRIES; attempt += 1) {
      try {
        const result = await store.endLines({ id: batch.id, tenant: data.tenant }, [end]);
        if (result.status !== "in_progress" && result.status !== "missing") {
          logger.debug({ batch_id: batch.id, status: result.status }, "batch line recorded");
        }
        return;
      } catch (error) {
        if (attempt === TRIES) {
          logger.error(
            { job_id: jobId, batch_id: batch.id, err: error },
            "could not record the batch line; a sweeper will record it from the job's outcome",
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  };

  const inflight = new Set<Promise<void>>();
  const track = (recording: Promise<void>) => {
    inflight.add(recording);
    void recording.finally(() => inflight.delete(recording));
  };

  return {
    watch(worker) {
      worker.on("completed", (job, outcome) => {
        const data = job?.data;
        if (!job || !data?.batch || !outcome) return;
        track(record(job.id as string, data, lineEndOf(job.id as string, data.batch, outcome)));
      });
      worker.on("failed", (job, error) => {
        const data = job?.data;
        if (!job || !data?.batch) return;
        if (!endedForGood(job)) return;
        const end = failedLine(data.batch, "internal_error", error.message.slice(0, 500));
        track(record(job.id as string, data, end));
      });
    },
    async drain() {
      while (inflight.size) await Promise.all([...inflight]);
    },
  };
}
