/**
 * The two sides of the comparison, each on its own fresh prefix, cleaned up afterwards:
 * raw BullMQ (a no-op processor) and Cascade's completion worker (createCompletionWorker with
 * the simulated provider, logging at info to /dev/null through pino).
 */
import type { IntervalProfiler } from "../support/cpu-profiler.js";
import type { BenchModules, Processor, Queue, WorkerOptions } from "../support/modules.js";
import { deleteKeysWithPrefix } from "../support/redis-stats.js";
import { type DrainSubject, drainRound, type RoundResult } from "./drain.js";
import type { ThroughputOptions } from "./options.js";
import { benchConfigFile, buildJobData } from "./workload.js";

type RedisClient = ReturnType<BenchModules["shared"]["createRedis"]>;

export interface RoundContext {
  modules: BenchModules;
  redisUrl: string;
  statsRedis: RedisClient | undefined;
  options: ThroughputOptions;
  runId: string;
  round: number;
  profiler: IntervalProfiler | undefined;
}

const ADD_BULK_CHUNK = 1000;

async function addInChunks(
  queue: Queue,
  jobs: number,
  entry: (index: number) => Parameters<Queue["addBulk"]>[0][number],
) {
  for (let start = 0; start < jobs; start += ADD_BULK_CHUNK) {
    const chunk = Array.from({ length: Math.min(ADD_BULK_CHUNK, jobs - start) }, (_, offset) =>
      entry(start + offset),
    );
    await queue.addBulk(chunk);
  }
}

/** Obliterates the queue, deletes whatever else lives under the prefix, closes the connections. */
async function cleanUp(queue: Queue, connections: RedisClient[], prefix: string): Promise<void> {
  const [first] = connections;
  try {
    await queue.obliterate({ force: true });
  } catch (error) {
    console.error(`  (obliterate failed: ${(error as Error).message}; deleting the keys instead)`);
  }
  if (first) await deleteKeysWithPrefix(first, prefix);
  await queue.close();
  for (const connection of connections) await connection.quit().catch(() => connection.disconnect());
}

type JobData = import("../../packages/shared/dist/index.js").JobData;

/** A raw BullMQ side: the baseline, or (in the ablation bench) the baseline plus some of Cascade's work. */
export interface RawVariant {
  label: string;
  /** Per-job add options; none for the baseline (BullMQ's own ids, no priority). */
  jobOptions?(data: JobData): Record<string, unknown>;
  /** Extra Worker options, on top of connection, prefix and concurrency. */
  workerOptions?: Partial<WorkerOptions>;
  processor?: Processor;
}

export const baselineVariant: RawVariant = { label: "raw" };

export async function runRawRound(
  context: RoundContext,
  variant: RawVariant = baselineVariant,
): Promise<RoundResult> {
  const { modules, options, redisUrl } = context;
  const { shared, bullmq } = modules;
  const prefix = `{bench-${variant.label.replace(/[^A-Za-z0-9]+/g, "-")}-${context.runId}-${context.round}}`;
  const queueConnection = shared.createRedis(redisUrl);
  // Both sides get the connection settings the production worker uses (coalesced writes, 0025).
  const workerConnection = shared.createRedis(redisUrl, { coalesceWrites: true });
  const queue = new bullmq.Queue(shared.QUEUE_NAMES.completions, {
    connection: queueConnection as never,
    prefix,
  });
  // The same payload Cascade's jobs carry, so both sides move the same bytes through Redis.
  const config = shared.loadConfig(
    { CASCADE_REDIS_PREFIX: "bench", LOG_LEVEL: "info" },
    { raw: benchConfigFile() },
  );
  const data = buildJobData(modules, config, Date.now());
  try {
    return await drainRound({
      side: variant.label,
      round: context.round,
      jobs: options.jobs,
      timeoutMs: options.timeoutSeconds * 1000,
      queue,
      statsRedis: context.statsRedis,
      profiler: context.profiler,
      prefill: () =>
        addInChunks(queue, options.jobs, () => ({
          name: shared.QUEUE_NAMES.completions,
          data,
          ...(variant.jobOptions ? { opts: variant.jobOptions(data) } : {}),
        })),
      start(): DrainSubject {
        const worker = new bullmq.Worker(
          shared.QUEUE_NAMES.completions,
          variant.processor ?? (async () => ({ ok: true })),
          {
            ...variant.workerOptions,
            connection: workerConnection as never,
            prefix,
            concurrency: options.concurrency,
          },
        );
        worker.on("error", (error) => console.error(`  raw worker error: ${error.message}`));
        return { worker, close: () => worker.close() };
      },
    });
  } finally {
    await cleanUp(queue, [queueConnection, workerConnection], prefix);
  }
}

export async function runCascadeRound(context: RoundContext, label = "cascade"): Promise<RoundResult> {
  const { modules, options, redisUrl } = context;
  const { shared, worker: workerModule, bullmq } = modules;
  const env = {
    REDIS_URL: redisUrl,
    CASCADE_REDIS_PREFIX: `bench-${context.runId}-c${context.round}`,
    LOG_LEVEL: options.logLevel,
  };
  const config = shared.loadConfig(env, { raw: benchConfigFile() });
  const keys = shared.createKeys(config.settings.CASCADE_REDIS_PREFIX);
  const queueConnection = shared.createRedis(redisUrl);
  // Both sides get the connection settings the production worker uses (coalesced writes, 0025).
  const workerConnection = shared.createRedis(redisUrl, { coalesceWrites: true });
  // As packages/api/src/app.ts builds its queue.
  const queue = new bullmq.Queue(shared.QUEUE_NAMES.completions, {
    connection: queueConnection as never,
    prefix: keys.bullPrefix,
  });
  // As packages/worker/src/main.ts builds its logger (buffered sonic-boom), but into /dev/null.
  const destination = shared.createLogDestination("/dev/null");
  const logger = shared.createLogger(config.settings.LOG_LEVEL, { name: "cascade-worker" }, destination);
  const data = buildJobData(modules, config, Date.now());
  try {
    return await drainRound({
      side: label,
      round: context.round,
      jobs: options.jobs,
      timeoutMs: options.timeoutSeconds * 1000,
      queue,
      statsRedis: context.statsRedis,
      profiler: context.profiler,
      // The options JobStore.add uses (packages/api/src/jobs/job-store.ts): the API's job id and priority.
      prefill: () =>
        addInChunks(queue, options.jobs, () => ({
          name: shared.QUEUE_NAMES.completions,
          data,
          opts: { jobId: shared.newId("job"), priority: data.priority },
        })),
      start(): DrainSubject {
        // As packages/worker/src/main.ts: the shared breakers are on (this config has no limits or
        // budgets, so a hop is admitted in-process while its breaker is known closed).
        const resilience = new modules.engine.Resilience(
          workerConnection,
          config,
          keys,
          logger,
          shared.systemClock,
        );
        const completions = workerModule.createCompletionWorker({
          config,
          connection: workerConnection,
          keys,
          providers: modules.engine.createProviderRegistry(config),
          logger,
          clock: shared.systemClock,
          concurrency: options.concurrency,
          lockDurationMs: config.settings.WORKER_LOCK_DURATION_MS,
          resilience,
        });
        return {
          worker: completions.worker as never,
          close: async () => {
            await completions.close(config.settings.SHUTDOWN_TIMEOUT_MS);
            await resilience.close();
          },
        };
      },
    });
  } finally {
    logger.flush();
    destination.end();
    await cleanUp(queue, [queueConnection, workerConnection], keys.bullPrefix);
  }
}
