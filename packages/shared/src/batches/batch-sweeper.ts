import { Job } from "bullmq";
import type { ConfigFile } from "../config/schema.js";
import { type JobData, type JobOutcome, jobOutcomeSchema } from "../schemas/job.js";
import { type BatchQueueDeps, drainBatch } from "./batch-drain.js";
import { enqueueBatch } from "./batch-enqueuer.js";
import { newLeaseToken } from "./batch-store.js";
import { type BatchRecord, batchLineJobId, isTerminalBatchStatus } from "./batch-types.js";
import { failedLine, type LineEnd, lineEndOf, stopLine } from "./output-lines.js";

export interface BatchSweeperOptions extends BatchQueueDeps {
  config: ConfigFile;
  /** How often each process looks at the unfinished batches (default 5 s). */
  intervalMs?: number;
  /**
   * A batch with no line ended for this long has its unfinished lines' jobs checked (default 15 s:
   * a line whose worker died between its job's end and its record waits this long, plus a pass).
   */
  idleMs?: number;
}

/** How long one process's claim on a batch's pass lasts at most. */
const CLAIM_MS = 60_000;
/** Lines whose jobs one reconcile pass looks at, per batch. */
const RECONCILE_LINES = 1000;

/**
 * The background duties of batches, run by every worker process (each claims a batch for one
 * pass, so they share the work): resume an enqueue whose process died (its lease expired),
 * expire batches past their completion window, take back the queued lines of cancelled and expired
 * batches, and reconcile lines whose job ended without being recorded. Everything here is
 * idempotent; the normal path (a line ends, the batch finalizes) needs none of it.
 */
export class BatchSweeper {
  private readonly intervalMs: number;
  private readonly idleMs: number;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private readonly enqueues = new Map<string, { controller: AbortController; done: Promise<unknown> }>();
  private closed = false;
  private started = false;
  /** When this process last reconciled each batch (at most once per idleMs). */
  private readonly reconciledAt = new Map<string, number>();

  constructor(private readonly options: BatchSweeperOptions) {
    this.intervalMs = options.intervalMs ?? 5000;
    this.idleMs = options.idleMs ?? 15_000;
  }

  /** Starts the periodic passes (again: no-op). */
  start(): void {
    if (this.started) return;
    this.started = true;
    const tick = () => {
      if (this.closed) return;
      this.pass = this.sweep()
        .catch((error) => this.options.logger.error({ err: error }, "batch sweep failed"))
        .finally(() => {
          if (!this.closed) this.timer = setTimeout(tick, this.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, Math.min(this.intervalMs, 1000)).unref();
  }

  /** One pass over every unfinished batch (tests call it directly). */
  async sweep(): Promise<void> {
    const { store } = this.options;
    const [seconds, micros] = await store.redis.time();
    const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const active = await store.active();
    const live = new Set(active);
    for (const batchId of this.reconciledAt.keys()) if (!live.has(batchId)) this.reconciledAt.delete(batchId);
    for (const batchId of active) {
      if (this.closed) return;
      // One process at a time per batch; the claim lapses on its own if this one dies mid-pass.
      const claim = store.keys.batchSweep(batchId);
      if ((await store.redis.set(claim, "1", "PX", CLAIM_MS, "NX")) !== "OK") continue;
      try {
        await this.sweepBatch(batchId, nowMs);
      } catch (error) {
        this.options.logger.error({ err: error, batch_id: batchId }, "batch sweep failed for this batch");
      } finally {
        await store.redis.del(claim).catch(() => {});
      }
    }
  }

  private async sweepBatch(batchId: string, nowMs: number): Promise<void> {
    const { store } = this.options;
    let record = await store.load(batchId);
    if (!record || isTerminalBatchStatus(record.status)) {
      this.reconciledAt.delete(batchId);
      await store.forget(batchId);
      return;
    }
    if (record.ending === "" && nowMs >= record.expires_at * 1000) {
      const expired = await store.transition(batchId, "expire");
      if (expired.changed) {
        this.options.logger.warn({ batch_id: batchId }, "batch expired: ending its unfinished lines");
        record = (await store.load(batchId)) ?? record;
      }
    }
    if (!record.enqueue_done && !this.enqueues.has(batchId)) {
      const token = newLeaseToken();
      if (await store.acquireLease(batchId, token)) this.resume(batchId, token, record.cursor);
    }
    if (record.ending !== "") await drainBatch(this.options, batchId);
    const idleSince = Math.max(record.progress_at, this.reconciledAt.get(batchId) ?? 0);
    if (nowMs - idleSince >= this.idleMs) {
      this.reconciledAt.set(batchId, nowMs);
      // Once per idle time across every process (each has its own reconciledAt).
      const mark = store.keys.batchReconciled(batchId);
      if (this.idleMs <= 0 || (await store.redis.set(mark, "1", "PX", this.idleMs, "NX")) === "OK") {
        // Not done: the next pass (any process's) tries again, rather than one idle time later.
        await this.reconcile(record).catch(async (error: unknown) => {
          await store.redis.del(mark).catch(() => {});
          throw error;
        });
      }
    }
  }

  private resume(batchId: string, token: string, cursor: number): void {
    const controller = new AbortController();
    this.options.logger.warn({ batch_id: batchId, cursor }, "resuming a batch's enqueue left unfinished");
    const done = enqueueBatch(this.options, batchId, token, controller.signal)
      .catch((error) => this.options.logger.error({ err: error, batch_id: batchId }, "batch enqueue failed"))
      .finally(() => this.enqueues.delete(batchId));
    this.enqueues.set(batchId, { controller, done });
  }

  /**
   * Lines handed to the queue long ago whose jobs have ended without the line being recorded
   * (the recorder failed, the job failed outside the processor, or its job was cancelled by
   * DELETE /v1/jobs/:id while queued): record them from what BullMQ holds.
   */
  private async reconcile(record: BatchRecord): Promise<void> {
    const { store, queue } = this.options;
    const ended = await store.endedLines(record.id);
    const lines: number[] = [];
    for (let line = 1; line <= record.cursor && lines.length < RECONCILE_LINES; line += 1) {
      if (!ended(line)) lines.push(line);
    }
    const ends: LineEnd[] = [];
    const states = await Promise.all(lines.map((line) => queue.getJobState(batchLineJobId(record.id, line))));
    const missing: number[] = [];
    for (const [index, state] of states.entries()) {
      const line = lines[index] as number;
      const jobId = batchLineJobId(record.id, line);
      if (state === "unknown") missing.push(line);
      if (state !== "completed" && state !== "failed") continue;
      const job = await Job.fromId<JobData, JobOutcome>(queue, jobId);
      const ref = job?.data?.batch ?? { id: record.id, custom_id: "", line };
      const outcome = jobOutcomeSchema.safeParse(job?.returnvalue);
      ends.push(
        state === "completed" && outcome.success
          ? lineEndOf(jobId, ref, outcome.data)
          : failedLine(ref, "internal_error", job?.failedReason ?? "the job failed"),
      );
    }
    const customIds = await store.customIds(record.id, missing);
    for (const [index, line] of missing.entries())
      ends.push(stopLine(record.id, line, customIds[index] ?? ""));
    if (ends.length === 0) return;
    this.options.logger.warn(
      { batch_id: record.id, lines: ends.length },
      "recorded batch lines whose jobs ended unrecorded",
    );
    await store.endLines(record, ends);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const { controller } of this.enqueues.values()) controller.abort();
    await Promise.all([this.pass, ...[...this.enqueues.values()].map((entry) => entry.done)]);
  }
}
