import type { JobsOptions } from "bullmq";
import type { ConfigFile } from "../config/schema.js";
import { FairTags, fairJobData, weightsFromConfig } from "../fairness/fair-tags.js";
import { completionJobOptions } from "../jobs/completion-job-options.js";
import { QUEUE_NAMES } from "../redis/keys.js";
import type { JobData } from "../schemas/job.js";
import { type BatchQueueDeps, drainLines } from "./batch-drain.js";
import { batchLineJobData, customIdOf, parseBatchLine } from "./batch-lines.js";
import { type BatchEnding, batchLineJobId, isTerminalBatchStatus, MAX_LINE_BYTES } from "./batch-types.js";
import { EventLoopYielder } from "./event-loop-yielder.js";
import { type FileLine, readLines } from "./file-store.js";
import { failedLine, invalidLine, type LineEnd, stopLine } from "./output-lines.js";

/** Jobs per `addBulk` (one pipelined round trip each). */
export const ENQUEUE_CHUNK = 500;

export interface EnqueueDeps extends BatchQueueDeps {
  config: ConfigFile;
  chunkSize?: number;
}

/** done: every line handed over; stopped: asked to stop (lease released for another process); lost: lease taken over; missing: no such batch. */
export type EnqueueResult = "done" | "stopped" | "lost" | "missing";

/**
 * Hands a batch's lines to the completion queue, `chunkSize` jobs per addBulk, from the batch's
 * cursor on, holding the enqueue lease `token`. Job ids derive from the batch id and line number,
 * so a chunk queued twice (a crash between addBulk and the cursor update) is queued once. After
 * each chunk the cursor moves and the lease is renewed; a process that dies mid-way stops renewing
 * and a sweeper takes the lease over and resumes at the cursor. Once the batch is cancelled or
 * expired, the remaining lines end without running (and a chunk queued meanwhile is taken back).
 * The event loop gets a turn at least every few milliseconds.
 */
export async function enqueueBatch(
  deps: EnqueueDeps,
  batchId: string,
  token: string,
  signal?: AbortSignal,
): Promise<EnqueueResult> {
  const { store, config, logger } = deps;
  const chunkSize = deps.chunkSize ?? ENQUEUE_CHUNK;
  const record = await store.load(batchId);
  if (!record || isTerminalBatchStatus(record.status)) {
    await store.releaseLease(batchId, token);
    return "missing";
  }
  let ending: BatchEnding = record.ending;
  if (ending === "") ending = (await store.transition(batchId, "start")).ending;
  const batch = record;
  const yielder = new EventLoopYielder();
  let cursor = record.cursor;
  // Usually defined already on this connection (the process builds one at start).
  const fairTags = new FairTags(store.redis, store.keys, weightsFromConfig(config.tenants));

  const queueLines = async (lines: FileLine[]): Promise<void> => {
    const now = Date.now();
    const jobs: Array<{ name: string; data: JobData; opts: JobsOptions }> = [];
    const failures: LineEnd[] = [];
    const customIds: Array<{ line: number; custom_id: string }> = [];
    for (const entry of lines) {
      const parsed = entry.tooLong
        ? undefined
        : parseBatchLine(config, batch.endpoint, entry.line, entry.text, entry.notUtf8 === true);
      const jobId = batchLineJobId(batchId, entry.line);
      if (parsed?.ok) {
        customIds.push({ line: entry.line, custom_id: parsed.value.custom_id });
        jobs.push({
          name: QUEUE_NAMES.completions,
          data: fairJobData(batchLineJobData(parsed.value, batch, now)),
          opts: completionJobOptions({ jobId, queuePriority: batch.priority }),
        });
      } else {
        // Valid when the batch was accepted; only a config change before a resume gets here.
        const message = parsed?.error.message ?? `line ${entry.line} is longer than ${MAX_LINE_BYTES} bytes`;
        const ref = { id: batchId, custom_id: customIdOf(entry.text), line: entry.line };
        failures.push(invalidLine(jobId, ref, message));
      }
      await yielder.maybeYield();
    }
    await store.saveCustomIds(batchId, customIds);
    if (jobs.length) {
      // The chunk's fair-share tags, in line order, behind the tenant's earlier jobs.
      const priorities = await fairTags.priorities(batch.tenant, batch.priority, jobs.length);
      jobs.forEach((job, index) => {
        job.opts.priority = priorities[index] ?? batch.priority;
      });
      await deps.queue.addBulk(jobs);
    }
    if (failures.length) await store.endLines(batch, failures);
  };

  const flush = async (lines: FileLine[]): Promise<EnqueueResult | undefined> => {
    if (lines.length === 0) return undefined;
    if (signal?.aborted) {
      await store.releaseLease(batchId, token);
      return "stopped";
    }
    const queued = ending === "";
    if (queued) await queueLines(lines);
    else
      await store.endLines(
        batch,
        lines.map((entry) => stopLine(batchId, entry.line, customIdOf(entry.text))),
      );
    cursor = (lines[lines.length - 1] as FileLine).line;
    const progress = await store.progress(batchId, token, cursor, false);
    if (progress.status === "lost" || progress.status === "missing") return progress.status;
    if (queued && progress.ending !== "") {
      // Cancelled or expired while this chunk was being queued: the canceller may not have seen
      // it (it drains up to the cursor it read), so take it back here.
      ending = progress.ending;
      await drainLines(
        deps,
        batch,
        lines.map((entry) => entry.line),
        ending,
      );
    }
    await yielder.maybeYield();
    return undefined;
  };

  let chunk: FileLine[] = [];
  for await (const line of readLines(store.redis, store.keys.batchInput(batchId), cursor)) {
    if (line.line > batch.total) break;
    chunk.push(line);
    if (chunk.length >= chunkSize) {
      const stop = await flush(chunk);
      chunk = [];
      if (stop) return stop;
    } else {
      await yielder.maybeYield();
    }
  }
  const stop = await flush(chunk);
  if (stop) return stop;
  if (cursor < batch.total) {
    // The input copy is gone (it only is once every line is handed over): fail what is left.
    logger.error({ batch_id: batchId, cursor, total: batch.total }, "batch input missing; failing the rest");
    const rest: LineEnd[] = [];
    for (let line = cursor + 1; line <= batch.total; line += 1) {
      rest.push(
        failedLine(
          { id: batchId, custom_id: "", line },
          "input_lost",
          "the batch's input was lost before this line was queued",
        ),
      );
    }
    await store.endLines(batch, rest);
    cursor = batch.total;
  }
  const final = await store.progress(batchId, token, cursor, true);
  return final.status === "lost" || final.status === "missing" ? final.status : "done";
}
