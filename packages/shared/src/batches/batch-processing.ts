import type { Worker } from "bullmq";
import type { Config } from "../config/load.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import type { RequestObserver } from "../requests/finished-request.js";
import type { JobData, JobOutcome } from "../schemas/job.js";
import type { CompletionQueue } from "./batch-drain.js";
import { createBatchRecorder } from "./batch-recorder.js";
import { BatchStore } from "./batch-store.js";
import { BatchSweeper } from "./batch-sweeper.js";

/** What a worker process runs for batches (composed in worker main.ts and the test stack). */
export interface BatchProcessing {
  /** Records the lines of `worker`'s jobs once BullMQ has stored how they ended. */
  watch(worker: Worker<JobData, JobOutcome>): void;
  readonly sweeper: BatchSweeper;
  /** Starts the sweeper (resumed enqueues, expiry, cancel drains, reconciliation). */
  start(): void;
  close(): Promise<void>;
}

export function createBatchProcessing(options: {
  config: Config;
  connection: RedisClient;
  keys: Keys;
  /** The process's completion queue (its owner closes it), where resumed batch lines go. */
  queue: CompletionQueue;
  logger: Logger;
  /** Told of the lines a cancel or expiry takes back (BatchQueueDeps.counts). */
  counts?: { observer: RequestObserver; now(): number };
  sweepIntervalMs?: number;
  idleMs?: number;
}): BatchProcessing {
  const { config, connection, keys, queue } = options;
  const logger = options.logger.child({ component: "batches" });
  const store = new BatchStore(connection, keys, config.settings.JOB_RETENTION_S);
  const recorder = createBatchRecorder({ store, logger });
  const sweeper = new BatchSweeper({
    store,
    queue,
    logger,
    config: config.file,
    ...(options.counts ? { counts: options.counts } : {}),
    ...(options.sweepIntervalMs !== undefined ? { intervalMs: options.sweepIntervalMs } : {}),
    ...(options.idleMs !== undefined ? { idleMs: options.idleMs } : {}),
  });
  return {
    watch: recorder.watch,
    sweeper,
    start: () => sweeper.start(),
    async close() {
      await recorder.drain();
      await sweeper.close();
    },
  };
}
