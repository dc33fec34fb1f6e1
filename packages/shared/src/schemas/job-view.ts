import type { JobData, JobObject, JobOutcome, JobProgress, JobStatus } from "./job.js";

/** The parts of a stored BullMQ job that the public job object is built from. */
export interface StoredJob {
  id: string;
  data: JobData;
  /** The saved resume point (BullMQ job progress), once the job has made an attempt. */
  progress: JobProgress | undefined;
  /** BullMQ state: waiting, prioritized, delayed, active, completed, failed, ... */
  state: string;
  outcome: JobOutcome | undefined;
  processedOn: number | undefined;
  finishedOn: number | undefined;
  failedReason: string | undefined;
  /** How many times BullMQ found its run stalled (its worker killed, or stopped past its lock). */
  stalledCounter?: number;
}

/**
 * The status of a job that waits in the queue (delayed, or not yet taken): one waiting between
 * tries (a backoff, a cooldown after an attempt) has started, so it is running; one that has made
 * no attempt yet (waiting in line for a limit) is queued.
 */
export function waitingStatus(progress: JobProgress | undefined): "queued" | "running" {
  return (progress?.attempts.length ?? 0) > 0 ? "running" : "queued";
}

function statusOf(job: StoredJob): JobStatus {
  if (job.outcome) return job.outcome.status;
  if (job.state === "failed") return "failed";
  if (job.state === "active") return "running";
  return waitingStatus(job.progress);
}

const seconds = (ms: number | undefined) => (ms ? Math.floor(ms / 1000) : null);

/** Builds the contract's job object from the stored job. */
export function toJobObject(job: StoredJob): JobObject {
  const { data, outcome } = job;
  const status = statusOf(job);
  const progress = job.progress;
  const failedUnexpectedly = !outcome && job.state === "failed";
  return {
    id: job.id,
    object: "job",
    status,
    created_at: data.created_at,
    started_at:
      outcome?.started_at ?? progress?.started_at ?? (status === "queued" ? null : seconds(job.processedOn)),
    finished_at: outcome?.finished_at ?? (failedUnexpectedly ? seconds(job.finishedOn) : null),
    route: data.route,
    models: data.chain.map((hop) => hop.model),
    priority: data.priority,
    metadata: data.metadata ?? {},
    user: data.user ?? null,
    result: outcome?.result ?? null,
    model: outcome?.model ?? null,
    provider: outcome?.provider ?? null,
    cost_usd: outcome?.cost_usd ?? progress?.cost_usd ?? 0,
    attempts: outcome?.attempts ?? progress?.attempts ?? [],
    error:
      outcome?.error ??
      (failedUnexpectedly
        ? { type: "internal_error", message: job.failedReason ?? "the job failed unexpectedly" }
        : null),
    webhook: data.webhook ?? null,
  };
}

/** The job object of a job that just ended, as GET /v1/jobs/:id will show it (webhooks, `done`). */
export function finishedJobObject(jobId: string, data: JobData, outcome: JobOutcome): JobObject {
  return toJobObject({
    id: jobId,
    data,
    progress: undefined,
    state: "completed",
    outcome,
    processedOn: undefined,
    finishedOn: undefined,
    failedReason: undefined,
  });
}
