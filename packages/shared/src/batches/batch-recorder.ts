import type { Job, Worker } from "bullmq";
import type { Logger } from "../logger.js";
import type { JobData, JobOutcome } from "../schemas/job.js";
import type { BatchStore } from "./batch-store.js";
import { failedLine, type LineEnd, lineEndOf } from "./output-lines.js";

export interface BatchRecorder {
  /**
   * The completion worker's `onFinished` hook for batch lines: records the line's output or
   * error line and counts it (one Lua call; jobs without `data.batch` cost nothing). Called
   * before BullMQ stores the outcome, so a crash in between re-runs the job and records it then;
   * a line is recorded at most once. Never throws: a line it could not record is picked up by a
   * sweeper from the job's stored outcome.
   */
  onFinished(job: Job<JobData, JobOutcome>, data: JobData, outcome: JobOutcome): Promise<void>;
  /** Records lines whose job failed without an outcome (the processor threw, or stalled too often). */
  watch(worker: Worker<JobData, JobOutcome>): void;
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

  return {
    async onFinished(job, data, outcome) {
      if (!data.batch) return;
      await record(job.id as string, data, lineEndOf(job.id as string, data.batch, outcome));
    },
    watch(worker) {
      worker.on("failed", (job, error) => {
        const data = job?.data;
        if (!job || !data?.batch) return;
        if (job.attemptsMade < (job.opts.attempts ?? 1)) return;
        const end = failedLine(job.id as string, data.batch, "internal_error", error.message.slice(0, 500));
        void record(job.id as string, data, end);
      });
    },
  };
}
