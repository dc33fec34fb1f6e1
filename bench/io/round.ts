/**
 * The I/O bench's worker processes and rounds. Per side and concurrency one worker process (raw
 * BullMQ with a timer, or Cascade's `node packages/worker/dist/main.js` calling the slow fake
 * upstream) on its own queue, kept for all rounds of that concurrency so rounds measure a warm
 * process. A round fills the paused queue with more jobs than it can finish, samples the idle RSS,
 * resumes the queue and, after a ramp-up, samples the finished count, the worker's RSS and
 * BullMQ's active list every 100 ms over the measured window; then the queue is paused, the jobs
 * still waiting removed, and the jobs in flight finish before the next round.
 */
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { type Child, spawnNode } from "../gateway/processes.js";
import { addInChunks, cleanUpQueue } from "../support/bullmq-queue.js";
import { type BenchModules, type Queue, repoRoot } from "../support/modules.js";
import { type RedisDelta, redisDelta, snapshotRedis } from "../support/redis-stats.js";
import { median } from "../support/stats.js";
import { buildJobData } from "../throughput/workload.js";
import { heapSnapshot, type MemorySample, memoryPreloadArguments, sampleAfterGc } from "./memory-samples.js";
import type { IoOptions } from "./options.js";
import { cpuSeconds, rssBytes } from "./proc-stats.js";

type RedisClient = ReturnType<BenchModules["shared"]["createRedis"]>;
type Config = import("../../packages/shared/dist/index.js").Config;

export type IoSide = "raw" | "cascade";

export interface IoRoundContext {
  modules: BenchModules;
  options: IoOptions;
  redisUrl: string;
  statsRedis: RedisClient | undefined;
  /** Cascade's config (the file the worker process reads) and its path. */
  config: Config;
  configPath: string;
  upstreamKey: string;
  /** The fake upstream's process (its CPU is read) and its call counter. */
  upstream: { pid: number; calls(): Promise<number> };
  runId: string;
}

export interface IoRoundResult {
  side: IoSide;
  concurrency: number;
  round: number;
  ok: boolean;
  flag?: string;
  /** Finished jobs per second over the measured window. */
  jobs_per_second: number;
  /** concurrency / latency: what the slots allow when every job takes exactly the latency. */
  ideal_jobs_per_second: number;
  /** Median length of BullMQ's active list over the window (jobs a worker holds). */
  in_flight: number;
  /** RSS of the process right after start-up, before its first job. */
  fresh_idle_rss_mib: number;
  /** RSS just before the round, idle after the rounds before it (what a warm, idle worker holds). */
  idle_rss_mib: number;
  steady_rss_mib: number;
  /** (steady RSS − idle RSS before the round) / in-flight jobs. */
  rss_kib_per_in_flight_job: number;
  /** (steady RSS − RSS right after start-up) / in-flight jobs: JIT code and warm caches included. */
  rss_kib_per_in_flight_job_from_fresh: number;
  worker_cpu_us_per_job: number;
  upstream_cpu_us_per_job: number | null;
  upstream_calls_per_job: number | null;
  redis: (RedisDelta & { cpu_us_per_job: number; commands_per_job: number }) | null;
  /** Of a sample of finished jobs, how many carry a succeeded outcome (Cascade) or `ok` (raw). */
  sampled_ok: string;
  /**
   * Of up to 200 jobs finished in the window: median and p90 of the time each spent active
   * (BullMQ's finishedOn − processedOn, the worker's clock) and, for Cascade, of its upstream call
   * (the last attempt's duration_ms); the difference is what the worker adds around the call.
   */
  timings: JobTimings;
  load_average_1m: number;
  /** DIAGNOSTIC (--gc-samples): memory after a forced full GC. */
  gc?: GcFigures;
}

/** Memory after forced full GCs: what the process retains (KiB per in-flight job: median of samples). */
export interface GcFigures {
  samples: number;
  fresh_heap_mib: number;
  idle_heap_mib: number;
  steady_heap_mib: number;
  steady_rss_mib: number;
  /** V8's heap size (committed) after GC in the window: RSS holds this, not just what is used. */
  steady_heap_total_mib: number;
  /** (heap used after GC in the window − after GC idle before the round) / active jobs then. */
  heap_kib_per_in_flight_job: number;
  /** The same from the heap after GC right after start-up. */
  heap_kib_per_in_flight_job_from_fresh: number;
  /** (RSS after GC in the window − RSS after GC idle before the round) / active jobs then. */
  rss_kib_per_in_flight_job: number;
  external_kib_per_in_flight_job: number;
  heap_snapshots?: string[];
}

const MIB = 2 ** 20;

const PROFILE_PRELOAD = join(repoRoot, "bench", "gateway", "profile-preload.mjs");

/** Where a session's worker appends its after-GC memory samples (--gc-samples). */
function memoryFile(context: IoRoundContext, side: IoSide, concurrency: number): string {
  return join(dirname(context.configPath), `memory-${side}-${concurrency}.jsonl`);
}

function workerProcess(context: IoRoundContext, side: IoSide, concurrency: number, prefix: string): Child {
  const { options } = context;
  const profile = options.profileDirectory;
  const memory = options.gcSamples ? memoryPreloadArguments() : [];
  const memoryEnv = options.gcSamples
    ? {
        BENCH_MEMORY_FILE: memoryFile(context, side, concurrency),
        ...(options.heapSnapshotDirectory && side === "cascade"
          ? { BENCH_HEAP_SNAPSHOT_DIR: options.heapSnapshotDirectory }
          : {}),
      }
    : {};
  if (side === "raw") {
    return spawnNode(
      "raw worker",
      [...memory, "--import", "tsx", join(repoRoot, "bench", "io", "raw-worker.ts")],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          ...memoryEnv,
          REDIS_URL: context.redisUrl,
          IO_PREFIX: prefix,
          IO_CONCURRENCY: String(concurrency),
          IO_LATENCY_MS: String(options.latencyMs),
          IO_BURN_US: String(options.rawBurnUs),
        },
        quiet: true,
      },
    );
  }
  const entry = options.workerEntry ?? join(repoRoot, "packages", "worker", "dist", "main.js");
  return spawnNode("cascade worker", [...memory, ...(profile ? ["--import", PROFILE_PRELOAD] : []), entry], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...memoryEnv,
      REDIS_URL: context.redisUrl,
      CASCADE_CONFIG: context.configPath,
      CASCADE_REDIS_PREFIX: prefix,
      WORKER_CONCURRENCY: String(concurrency),
      LOG_LEVEL: options.logLevel,
      SHUTDOWN_TIMEOUT_MS: "1000",
      BENCH_UPSTREAM_KEY: context.upstreamKey,
      BENCH_PROFILE_PREFIX: profile ? `io-c${concurrency}` : `io-c${concurrency}-cascade`,
      ...(profile ? { BENCH_PROFILE_DIR: profile } : {}),
    },
    // The per-hop log lines go to /dev/null, as a production log goes to a file or a pipe.
    quiet: true,
  });
}

/** A worker process (one side, one concurrency) kept across that concurrency's rounds. */
export interface IoSession {
  side: IoSide;
  concurrency: number;
  child: Child;
  queue: Queue;
  queueConnection: RedisClient;
  bullPrefix: string;
  /** RSS right after start-up, before any job (MiB). */
  freshIdleRssMib: number;
  /** --gc-samples: the worker's memory after a full GC right after start-up, and its sample file. */
  freshGc?: MemorySample;
  memoryFile?: string;
  /** Heap snapshots written so far (--heap-snapshot). */
  snapshots: number;
  close(): Promise<void>;
}

const sampleRss = async (pid: number): Promise<number> => {
  const samples: number[] = [];
  for (let sample = 0; sample < 5; sample += 1) {
    samples.push(rssBytes(pid));
    await sleep(100);
  }
  return median(samples);
};

function queueCounts(session: IoSession) {
  const { queue, queueConnection } = session;
  const completedKey = queue.toKey("completed");
  const failedKey = queue.toKey("failed");
  const activeKey = queue.toKey("active");
  return async () => {
    const replies = (await queueConnection
      .multi()
      .zcard(completedKey)
      .zcard(failedKey)
      .llen(activeKey)
      .exec()) as Array<[Error | null, number]>;
    const completed = replies[0]?.[1] ?? 0;
    const failed = replies[1]?.[1] ?? 0;
    return { finished: completed + failed, failed, active: replies[2]?.[1] ?? 0 };
  };
}

/** Starts one side's worker process on its own paused queue and measures its idle RSS. */
export async function startIoSession(
  context: IoRoundContext,
  side: IoSide,
  concurrency: number,
): Promise<IoSession> {
  const { modules } = context;
  const { shared, bullmq } = modules;
  const cascadePrefix = `bench-io-${context.runId}-${concurrency}`;
  const bullPrefix =
    side === "raw"
      ? `{bench-io-raw-${context.runId}-${concurrency}}`
      : shared.createKeys(cascadePrefix).bullPrefix;
  const queueConnection = shared.createRedis(context.redisUrl);
  const queue = new bullmq.Queue(shared.QUEUE_NAMES.completions, {
    connection: queueConnection as never,
    prefix: bullPrefix,
  });
  await queue.pause();
  const child = workerProcess(context, side, concurrency, side === "raw" ? bullPrefix : cascadePrefix);
  const file = context.options.gcSamples ? memoryFile(context, side, concurrency) : undefined;
  if (file) rmSync(file, { force: true });
  const close = async () => {
    await child.stop(3000);
    await cleanUpQueue(queue, [queueConnection], bullPrefix);
  };
  try {
    const readyBy = performance.now() + 30_000;
    while ((await queue.getWorkersCount()) < 1) {
      if (child.exited()) throw new Error(`${child.name} exited: ${child.tail()}`);
      if (performance.now() > readyBy)
        throw new Error(`${child.name} not ready within 30 s: ${child.tail()}`);
      await sleep(100);
    }
    await sleep(1000);
    const freshIdleRssMib = (await sampleRss(child.process.pid as number)) / MIB;
    const freshGc = file ? await sampleAfterGc(child.process.pid as number, file) : undefined;
    return {
      side,
      concurrency,
      child,
      queue,
      queueConnection,
      bullPrefix,
      freshIdleRssMib,
      ...(freshGc ? { freshGc, memoryFile: file } : {}),
      snapshots: 0,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * One round on a running session: fill the paused queue, measure the idle RSS (the process has
 * run jobs before, except in the warm-up), resume, let it ramp up, measure the window, then pause,
 * remove what is still waiting and wait until the jobs in flight have finished.
 */
export async function runIoRound(
  context: IoRoundContext,
  session: IoSession,
  round: number,
): Promise<IoRoundResult> {
  const { modules, options } = context;
  const { shared } = modules;
  const { side, concurrency, child, queue } = session;
  const pid = child.process.pid as number;
  const latencySeconds = options.latencyMs / 1000;
  const ideal = concurrency / latencySeconds;
  // Enough that the queue never runs dry before the window ends, even at the ideal rate.
  const seconds = options.warmSeconds + options.measureSeconds;
  const jobs = Math.ceil(ideal * seconds * 1.2) + concurrency;
  // Both sides carry the same data and options (as POST /v1/jobs enqueues them: fair-share
  // ordered data, the API's job id, a queue priority, attempts).
  const data = shared.fairJobData(buildJobData(modules, context.config, Date.now()));
  await addInChunks(queue, jobs, () => ({
    name: shared.QUEUE_NAMES.completions,
    data,
    opts: shared.completionJobOptions({ jobId: shared.newId("job"), queuePriority: data.priority }),
  }));
  const idleRss = await sampleRss(pid);
  const counts = queueCounts(session);
  const before = await counts();
  const gcFile = session.memoryFile;
  const idleGc = gcFile ? await sampleAfterGc(pid, gcFile) : undefined;
  const snapshotting =
    side === "cascade" && options.heapSnapshotDirectory !== undefined && round === 1 && gcFile !== undefined;
  const snapshotPaths: string[] = [];
  const snapshot = async () => {
    session.snapshots += 1;
    const prefix = `io-c${concurrency}-cascade`;
    snapshotPaths.push(
      await heapSnapshot(pid, options.heapSnapshotDirectory as string, prefix, session.snapshots),
    );
  };
  if (snapshotting) await snapshot();

  const loadAverage = (await import("node:os")).loadavg()[0] ?? 0;
  const profiling = side === "cascade" && options.profileDirectory !== undefined && round > 0;
  await queue.resume();
  await sleep(options.warmSeconds * 1000);
  const redisBefore = context.statsRedis ? await snapshotRedis(context.statsRedis) : undefined;
  const upstreamCallsBefore = side === "cascade" ? await context.upstream.calls() : 0;
  const workerCpuBefore = cpuSeconds(pid);
  const upstreamCpuBefore = cpuSeconds(context.upstream.pid);
  if (profiling) child.process.kill("SIGUSR2");
  const start = await counts();
  const startedAt = performance.now();
  const rssSamples: number[] = [];
  const activeSamples: number[] = [];
  const gcSamples: Array<{ sample: MemorySample; active: number }> = [];
  const windowEnd = startedAt + options.measureSeconds * 1000;
  for (let tick = 1; performance.now() < windowEnd; tick += 1) {
    await sleep(100);
    rssSamples.push(rssBytes(pid));
    const { active } = await counts();
    activeSamples.push(active);
    // About once a second: a forced full GC and the memory left after it (diagnostic).
    if (gcFile && tick % 10 === 0) gcSamples.push({ sample: await sampleAfterGc(pid, gcFile), active });
    if (
      snapshotting &&
      snapshotPaths.length === 1 &&
      performance.now() >= startedAt + options.measureSeconds * 500
    )
      await snapshot();
    if (child.exited()) throw new Error(`${child.name} exited during the round: ${child.tail()}`);
  }
  const end = await counts();
  const endedAt = performance.now();
  const workerCpu = cpuSeconds(pid) - workerCpuBefore;
  const upstreamCpu = cpuSeconds(context.upstream.pid) - upstreamCpuBefore;
  const upstreamCalls = side === "cascade" ? (await context.upstream.calls()) - upstreamCallsBefore : 0;
  const redisAfter = context.statsRedis ? await snapshotRedis(context.statsRedis) : undefined;
  if (profiling) child.process.kill("SIGUSR2");
  // Read after the window's figures (its reads are not counted), before the queue is paused.
  const timings = jobTimings(await queue.getCompleted(0, 199));

  // Stop feeding, remove the jobs still waiting, let the ones in flight finish.
  await queue.pause();
  await queue.drain();
  const drainBy = performance.now() + 60_000;
  while ((await counts()).active > 0 && performance.now() < drainBy) await sleep(100);
  const sample = await queue.getCompleted(0, 49);
  const good = sample.filter((job) => {
    const value = job.returnvalue as { status?: string; ok?: boolean } | undefined;
    return side === "raw" ? value?.ok === true : value?.status === "succeeded";
  }).length;
  await queue.clean(0, 1_000_000, "completed");
  if (profiling) await sleep(1000);

  const finished = end.finished - start.finished;
  const elapsed = (endedAt - startedAt) / 1000;
  const steadyRss = median(rssSamples);
  const inFlight = median(activeSamples);
  const problems: string[] = [];
  if (end.failed > before.failed) problems.push(`${end.failed - before.failed} jobs failed`);
  if (good < sample.length)
    problems.push(`${sample.length - good} of ${sample.length} sampled jobs did not succeed`);
  if (end.finished - before.finished + end.active >= jobs)
    problems.push("the queue ran dry before the window ended");
  if (finished === 0) problems.push("no job finished in the window");
  const delta = redisBefore && redisAfter ? redisDelta(redisBefore, redisAfter) : undefined;
  const gc =
    idleGc && session.freshGc && gcSamples.length
      ? gcFigures(session.freshGc, idleGc, gcSamples, snapshotPaths)
      : undefined;
  return {
    side,
    concurrency,
    round,
    ok: problems.length === 0,
    ...(problems.length ? { flag: problems.join("; ") } : {}),
    jobs_per_second: finished / elapsed,
    ideal_jobs_per_second: ideal,
    in_flight: inFlight,
    fresh_idle_rss_mib: session.freshIdleRssMib,
    idle_rss_mib: idleRss / MIB,
    steady_rss_mib: steadyRss / MIB,
    rss_kib_per_in_flight_job: (steadyRss - idleRss) / 1024 / Math.max(1, inFlight),
    rss_kib_per_in_flight_job_from_fresh:
      (steadyRss - session.freshIdleRssMib * MIB) / 1024 / Math.max(1, inFlight),
    worker_cpu_us_per_job: (workerCpu * 1e6) / Math.max(1, finished),
    upstream_cpu_us_per_job: side === "cascade" ? (upstreamCpu * 1e6) / Math.max(1, finished) : null,
    upstream_calls_per_job: side === "cascade" ? upstreamCalls / Math.max(1, finished) : null,
    redis: delta
      ? {
          ...delta,
          cpu_us_per_job: (delta.cpuSeconds * 1e6) / Math.max(1, finished),
          commands_per_job: delta.commands / Math.max(1, finished),
        }
      : null,
    sampled_ok: `${good}/${sample.length}`,
    timings,
    load_average_1m: Number(loadAverage.toFixed(2)),
    ...(gc ? { gc } : {}),
  };
}

export interface JobTimings {
  jobs: number;
  active_ms_p50: number;
  active_ms_p90: number;
  call_ms_p50: number | null;
  call_ms_p90: number | null;
  /** Jobs of the sample with a failed attempt, and the reasons of their failed attempts. */
  retried: number;
  retry_reasons: Record<string, number>;
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? Number.NaN;
}

interface FinishedJob {
  processedOn?: number;
  finishedOn?: number;
  returnvalue: unknown;
}

function jobTimings(jobs: FinishedJob[]): JobTimings {
  const active: number[] = [];
  const calls: number[] = [];
  const reasons: Record<string, number> = {};
  let retried = 0;
  for (const job of jobs) {
    if (job.processedOn !== undefined && job.finishedOn !== undefined)
      active.push(job.finishedOn - job.processedOn);
    type Attempt = { outcome?: string; reason?: string; duration_ms?: number };
    const attempts = (job.returnvalue as { attempts?: Attempt[] } | undefined)?.attempts ?? [];
    const last = attempts[attempts.length - 1]?.duration_ms;
    if (last !== undefined) calls.push(last);
    const failed = attempts.filter((attempt) => attempt.outcome === "error");
    if (failed.length) retried += 1;
    for (const attempt of failed) reasons[attempt.reason ?? "?"] = (reasons[attempt.reason ?? "?"] ?? 0) + 1;
  }
  return {
    jobs: active.length,
    active_ms_p50: percentile(active, 0.5),
    active_ms_p90: percentile(active, 0.9),
    call_ms_p50: calls.length ? percentile(calls, 0.5) : null,
    call_ms_p90: calls.length ? percentile(calls, 0.9) : null,
    retried,
    retry_reasons: reasons,
  };
}

function gcFigures(
  fresh: MemorySample,
  idle: MemorySample,
  samples: Array<{ sample: MemorySample; active: number }>,
  snapshots: string[],
): GcFigures {
  const perJob = (pick: (sample: MemorySample) => number, base: MemorySample) =>
    median(samples.map(({ sample, active }) => (pick(sample) - pick(base)) / 1024 / Math.max(1, active)));
  return {
    samples: samples.length,
    fresh_heap_mib: fresh.heapUsed / MIB,
    idle_heap_mib: idle.heapUsed / MIB,
    steady_heap_mib: median(samples.map(({ sample }) => sample.heapUsed)) / MIB,
    steady_rss_mib: median(samples.map(({ sample }) => sample.rss)) / MIB,
    steady_heap_total_mib: median(samples.map(({ sample }) => sample.heapTotal)) / MIB,
    heap_kib_per_in_flight_job: perJob((sample) => sample.heapUsed, idle),
    heap_kib_per_in_flight_job_from_fresh: perJob((sample) => sample.heapUsed, fresh),
    rss_kib_per_in_flight_job: perJob((sample) => sample.rss, idle),
    external_kib_per_in_flight_job: perJob((sample) => sample.external, idle),
    ...(snapshots.length ? { heap_snapshots: snapshots } : {}),
  };
}
