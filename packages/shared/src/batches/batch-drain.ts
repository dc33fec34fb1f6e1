import type { Queue } from "bullmq";
import type { Logger } from "../logger.js";
import type { RequestObserver } from "../requests/finished-request.js";
import { type JobData, type JobOutcome, jobDataSchema, parseJobProgress } from "../schemas/job.js";
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
    const slice = lines.slice(start, start + REMOVES_AT_ONCE);
    // Read before the remove: once removed, what a job had spent is gone with it.
    const held = deps.counts ? await readHeld(deps, batch.id, slice) : [];
    const codes = await Promise.all(
      slice.map((line) => queue.remove(batchLineJobId(batch.id, line)).catch(() => -1)),
    );
    const gone = slice.filter((_, index) => codes[index] === 1);
    const locked = slice.filter((_, index) => codes[index] === 0);
    if (locked.length && ending === "expire") {
      const pipeline = store.redis.pipeline();
      for (const line of locked) pipeline.publish(store.keys.cancelChannel, batchLineJobId(batch.id, line));
      await pipeline.exec();
    }
    if (gone.length) {
      // Cancelled lines appear in no file; expired ones get a batch_expired line naming custom_id.
      const customIds = ending === "expire" ? await store.customIds(batch.id, gone) : [];
      await store.endLines(
        batch,
        gone.map((line, index) => stopLine(batch.id, line, customIds[index] ?? "")),
      );
    }
    if (deps.counts) {
      const { observer, now } = deps.counts;
      const finishedAtMs = now();
      for (const [index, code] of codes.entries()) {
        const job = held[index];
        if (code !== 1 || !job) continue;
        observer.finished({
          door: "job",
          tenant: job.data.tenant,
          route: job.data.route,
          firstModel: job.data.chain[0]?.model ?? "",
          status: "cancelled",
          costUsd: job.progress?.cost_usd ?? 0,
          attempts: job.progress?.attempts ?? [],
          createdAtMs: job.data.created_at * 1000,
          ...(job.progress?.started_at !== undefined ? { startedAtMs: job.progress.started_at * 1000 } : {}),
          finishedAtMs,
        });
      }
    }
    removed += gone.length;
    running += locked.length;
    await yielder.maybeYield();
  }
  return { removed, running };
}

/** The data and progress of each line's job (undefined where it is gone or does not parse). */
async function readHeld(
  deps: BatchQueueDeps,
  batchId: string,
  lines: number[],
): Promise<({ data: JobData; progress: ReturnType<typeof parseJobProgress> } | undefined)[]> {
  const pipeline = deps.store.redis.pipeline();
  for (const line of lines)
    pipeline.hmget(deps.queue.toKey(batchLineJobId(batchId, line)), "data", "progress");
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, fields]) => {
    const [data, progress] = (error ? [] : fields) as (string | null)[];
    if (!data) return undefined;
    try {
      const parsed = jobDataSchema.safeParse(JSON.parse(data));
      if (!parsed.success) return undefined;
      return { data: parsed.data, progress: progress ? parseJobProgress(JSON.parse(progress)) : undefined };
    } catch {
      return undefined;
    }
  });
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
