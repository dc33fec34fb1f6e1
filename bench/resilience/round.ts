/**
 * One round of Cascade's completion worker on a fresh prefix, with or without shared limits:
 * the throughput bench's Cascade side (same drain, same logger into /dev/null, same connection
 * settings as the production worker) plus, for every variant but "off", a `Resilience` on the
 * worker's own connection, as packages/worker/src/main.ts builds it.
 */
import { addInChunks, cleanUpQueue } from "../support/bullmq-queue.js";
import type { IntervalProfiler } from "../support/cpu-profiler.js";
import type { BenchModules } from "../support/modules.js";
import { type DrainSubject, drainRound, type RoundResult } from "../throughput/drain.js";
import type { ResilienceOptions } from "./options.js";
import {
  BENCH_MODEL,
  BENCH_TENANT,
  buildUserJobData,
  type Layers,
  resilienceConfigFile,
  type Variant,
} from "./workload.js";

type RedisClient = ReturnType<BenchModules["shared"]["createRedis"]>;
type Keys = ReturnType<BenchModules["shared"]["createKeys"]>;
export type LogDestination = ReturnType<BenchModules["shared"]["createLogDestination"]>;

export interface RoundContext {
  modules: BenchModules;
  redisUrl: string;
  statsRedis: RedisClient | undefined;
  options: ResilienceOptions;
  runId: string;
  round: number;
  profiler: IntervalProfiler | undefined;
  /** One log destination for the whole run (each one made adds a timer and an exit hook). */
  logDestination: LogDestination;
}

/**
 * What the shared limits recorded during the round, read back afterwards: proof that admission
 * and settlement really ran for every job (their failures are only logged, into /dev/null here).
 */
export interface LimitChecks {
  /** Calls admitted, from the model's per-minute stats (admit.lua). */
  admitted: number;
  /** USD recorded in the tenant's usage hash for today (settle.lua; 0 without prices). */
  usage_usd: number;
  /** USD in the tenant's daily spend key (admit reserves, settle corrects). */
  tenant_spend_usd: number;
  /** Expected spend: jobs × the cost of one simulated reply. */
  expected_usd: number;
  problems: string[];
}

export interface ResilienceRoundResult extends RoundResult {
  variant: string;
  checks: LimitChecks | null;
}

async function readChecks(
  redis: RedisClient,
  keys: Keys,
  variant: Variant,
  jobs: number,
  costPerJob: number,
): Promise<LimitChecks> {
  const day = new Date().toISOString().slice(0, 10);
  const stats = (await redis.hgetall(keys.stats("model", BENCH_MODEL))) as Record<string, string>;
  const admitted = Object.entries(stats)
    .filter(([field]) => field.endsWith(":calls"))
    .reduce((sum, [, count]) => sum + Number(count), 0);
  const usage = Number((await redis.hget(keys.usage(BENCH_TENANT, day), "total")) ?? 0);
  const spend = Number((await redis.get(keys.spend({ tenant: BENCH_TENANT }, `d:${day}`))) ?? 0);
  const layers = variant.layers as Layers;
  const expected = layers.prices ? jobs * costPerJob : 0;
  const settled = true;
  const problems: string[] = [];
  if (admitted !== jobs) problems.push(`admitted ${admitted} calls for ${jobs} jobs`);
  const close = (value: number) => Math.abs(value - expected) <= Math.max(1e-9, expected * 1e-6);
  if (settled && !close(usage)) problems.push(`usage ${usage} USD, expected ${expected}`);
  if (settled && layers.budgets && !close(spend)) problems.push(`spend ${spend} USD, expected ${expected}`);
  return { admitted, usage_usd: usage, tenant_spend_usd: spend, expected_usd: expected, problems };
}

export async function runResilienceRound(
  context: RoundContext,
  variant: Variant,
): Promise<ResilienceRoundResult> {
  const { modules, options, redisUrl } = context;
  const { shared, worker: workerModule, bullmq } = modules;
  const env = {
    REDIS_URL: redisUrl,
    CASCADE_REDIS_PREFIX: `bench-res-${context.runId}-${variant.label}-r${context.round}`,
    LOG_LEVEL: options.logLevel,
  };
  // "off" runs the full config: the only difference between the sides is the resilience option.
  const config = shared.loadConfig(env, { raw: resilienceConfigFile(variant.layers) });
  const keys = shared.createKeys(config.settings.CASCADE_REDIS_PREFIX);
  const queueConnection = shared.createRedis(redisUrl);
  // The production worker's connection settings; Resilience shares it, as in main.ts.
  const workerConnection = shared.createRedis(redisUrl, { coalesceWrites: true });
  const queue = new bullmq.Queue(shared.QUEUE_NAMES.completions, {
    connection: queueConnection as never,
    prefix: keys.bullPrefix,
  });
  const destination = context.logDestination;
  const logger = shared.createLogger(config.settings.LOG_LEVEL, { name: "cascade-worker" }, destination);
  const jobData = buildUserJobData(modules, config, Date.now());
  const model = config.file.models[BENCH_MODEL];
  const first = jobData[0];
  if (!model || !first) throw new Error("bench config lost its model or job data");
  const estimate = {
    prompt: shared.estimatePromptTokens(first.request),
    completion: Math.min(24, shared.requestedMaxTokens(first.request) ?? 24),
  };
  const costPerJob = shared.costUsd(model, estimate.prompt, estimate.completion);

  const resilience = variant.layers
    ? new modules.engine.Resilience(workerConnection, config, keys, logger, shared.systemClock)
    : undefined;
  let checks: LimitChecks | null = null;
  try {
    const result = await drainRound({
      side: variant.label,
      round: context.round,
      jobs: options.jobs,
      timeoutMs: options.timeoutSeconds * 1000,
      queue,
      statsRedis: context.statsRedis,
      profiler: context.profiler,
      prefill: () =>
        addInChunks(queue, options.jobs, (index) => {
          const data = jobData[index % jobData.length] as (typeof jobData)[number];
          return {
            name: shared.QUEUE_NAMES.completions,
            data,
            opts: { jobId: shared.newId("job"), priority: data.priority },
          };
        }),
      start(): DrainSubject {
        const completions = workerModule.createCompletionWorker({
          config,
          connection: workerConnection,
          keys,
          providers: modules.engine.createProviderRegistry(config),
          logger,
          clock: shared.systemClock,
          concurrency: options.concurrency,
          lockDurationMs: config.settings.WORKER_LOCK_DURATION_MS,
          ...(resilience ? { resilience } : {}),
        });
        return {
          worker: completions.worker as never,
          close: () => completions.close(config.settings.SHUTDOWN_TIMEOUT_MS),
        };
      },
    });
    // Leases given back and batched settlements written, so Redis holds the exact figures.
    await resilience?.close();
    if (variant.layers && result.ok)
      checks = await readChecks(workerConnection, keys, variant, options.jobs, costPerJob);
    return { ...result, variant: variant.label, checks };
  } finally {
    logger.flush();
    await cleanUpQueue(queue, [queueConnection, workerConnection], keys.bullPrefix);
  }
}
