import type { Queue } from "bullmq";
import type { Logger } from "../logger.js";
import type { RequestObserver } from "../requests/finished-request.js";
import { type JobData, type JobOutcome, parseJobProgress } from "../schemas/job.js";
import type { BatchStore } from "./batch-store.js";
import { type BatchEnding, batchLineJobId, isTerminalBatchStatus } from "./batch-types.js";
import { EventLoopYielder } from "./event-loop-yielder.js";
import { stopLine } from "./output-lines.js";

export type CompletionQueue = Queue<JobData, JobOutcome>;

export interface BatchQueueDeps {
  store: BatchStore;
  queue: CompletionQueue;
  logger: Logger;
  /**
   * Told of each line's job taken back, as the jobs workers end are (a cancelled job: the metrics,
   * the usage rows, the dashboard): what a line had spent before it went back to wait (a billed
   * hop, then a Retry-After) counts. Without it the jobs are removed uncounted (tests).
   */
  counts?: { observer: RequestObserver; now(): number };
}

const REMOVES_AT_ONCE = 250;

/**
 * Takes back the jobs of lines that have not ended, for a batch that is being cancelled or has
 * expired: a queued (waiting, prioritized, delayed) job is removed and its line ends without
 * running. A running one, for a cancel, finishes (as at OpenAI, whose batch stays `cancelling`
 * while requests under way complete: their calls are paid for, so their answers go to the
 * output); for an expiry it is told to abort through the pub/sub channel DELETE /v1/jobs/:id
 * uses (the window is over). Either way its line ends when its worker returns. Safe to repeat:
 * lines end at most once.
 */
export async function drainLines(
  deps: BatchQueueDeps,
  batch: { id: string; tenant: string },
  lines: number[],
  ending: BatchEnding,
): Promise<{ removed: number; running: number }> {
  const { store, queue } = deps;
  const yielder = new EventLoopYielder();
  let removed = 0;
  let running = 0;
  for (let start = 0; start < lines.length; start += REMOVES_AT_ONCE) {
    // A job that has ended is its worker's to record (its answer goes to the output, counted
    // there): not removed, whatever its line shows yet. What a queued one had spent is read before
    // the remove, which takes it away.
    const held = await readHeld(deps, batch.id, lines.slice(start, start + REMOVES_AT_ONCE));
    const slice = held.filter((line) => !line.finished);
    const codes = await Promise.all(
      slice.map(({ line }) => queue.remove(batchLineJobId(batch.id, line)).catch(() => -1)),
    );
    const gone = slice.filter((_, index) => codes[index] === 1);
    const locked = slice.filter((_, index) => codes[index] === 0).map(({ line }) => line);
    if (locked.length && ending === "expire") {
      const pipeline = store.redis.pipeline();
      for (const line of locked) pipeline.publish(store.keys.cancelChannel, batchLineJobId(batch.id, line));
      await pipeline.exec();
    }
    if (gone.length) {
      // Cancelled lines appear in no file; expired ones get a batch_expired line naming custom_id.
      const goneLines = gone.map(({ line }) => line);
      const customIds = ending === "expire" ? await store.customIds(batch.id, goneLines) : [];
      const { endedNow } = await store.endLines(
        batch,
        goneLines.map((line, index) => stopLine(batch.id, line, customIds[index] ?? "")),
      );
      // Counted by the drain that ended the line (two may remove the same job: both see 1).
      if (deps.counts)
        countTakenBack(
          deps.counts,
          gone.filter(({ line }) => endedNow.has(line)),
        );
    }
    removed += gone.length;
    running += locked.length;
    await yielder.maybeYield();
  }
  return { removed, running };
}

/** What a line's job held when the drain looked: its data and progress, and whether it had ended. */
interface HeldLine {
  line: number;
  /** The job has ended (BullMQ stored its result, or failed it): not the drain's. */
  finished: boolean;
  /** The job's data, raw (null when the job is gone). */
  data: string | null;
  progress: string | null;
}

async function readHeld(deps: BatchQueueDeps, batchId: string, lines: number[]): Promise<HeldLine[]> {
  const pipeline = deps.store.redis.pipeline();
  for (const line of lines)
    pipeline.hmget(deps.queue.toKey(batchLineJobId(batchId, line)), "finishedOn", "data", "progress");
  const replies = (await pipeline.exec()) ?? [];
  return lines.map((line, index) => {
    const [error, fields] = replies[index] ?? [null, []];
    const [finishedOn, data, progress] = (error ? [] : fields) as (string | null)[];
    return { line, finished: Boolean(finishedOn), data: data ?? null, progress: progress ?? null };
  });
}

/** Each taken-back line's job, as a cancelled job, with what it had spent (see `counts`). */
function countTakenBack(counts: NonNullable<BatchQueueDeps["counts"]>, lines: HeldLine[]): void {
  const finishedAtMs = counts.now();
  for (const { data: raw, progress: rawProgress } of lines) {
    if (!raw) continue;
    let data: Pick<JobData, "tenant" | "route" | "chain" | "created_at">;
    let progress: ReturnType<typeof parseJobProgress>;
    try {
      data = JSON.parse(raw);
      progress = rawProgress ? parseJobProgress(JSON.parse(rawProgress)) : undefined;
    } catch {
      continue;
    }
    if (typeof data?.tenant !== "string" || typeof data.created_at !== "number") continue;
    counts.observer.finished({
      door: "job",
      tenant: data.tenant,
      route: typeof data.route === "string" ? data.route : null,
      firstModel: Array.isArray(data.chain) ? (data.chain[0]?.model ?? "") : "",
      status: "cancelled",
      // Calls a dead run left in flight were counted by their process's recovery.
      costUsd: Math.max(0, (progress?.cost_usd ?? 0) - (progress?.lost_usd ?? 0)),
      attempts: progress?.attempts ?? [],
      createdAtMs: data.created_at * 1000,
      ...(progress?.started_at !== undefined ? { startedAtMs: progress.started_at * 1000 } : {}),
      finishedAtMs,
    });
  }
}

/** drainLines for every line the enqueuer has handed over and that has not ended yet. */
export async function drainBatch(deps: BatchQueueDeps, batchId: string): Promise<void> {
  const record = await deps.store.load(batchId);
  if (!record || record.ending === "" || isTerminalBatchStatus(record.status)) return;
  const ended = await deps.store.endedLines(batchId);
  const lines: number[] = [];
  for (let line = 1; line <= record.cursor; line += 1) if (!ended(line)) lines.push(line);
  if (lines.length === 0) return;
  const result = await drainLines(deps, record, lines, record.ending);
  deps.logger.info(
    { batch_id: batchId, ending: record.ending, ...result },
    "batch winding down: queued lines removed, running ones finishing (cancel) or asked to abort (expiry)",
  );
}
