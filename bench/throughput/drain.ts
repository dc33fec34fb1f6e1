/**
 * One measured round: a queue pre-filled while paused, a worker started on it and ready, then the
 * queue resumed and the clock running until the worker's N-th finished job ('completed' or
 * 'failed' event, emitted after BullMQ's moveToFinished returned). Both sides go through here.
 */
import os from "node:os";
import { performance } from "node:perf_hooks";
import type { IntervalProfiler } from "../support/cpu-profiler.js";
import type { Queue, SharedModule, Worker } from "../support/modules.js";
import { type RedisDelta, redisDelta, snapshotRedis } from "../support/redis-stats.js";

type RedisClient = ReturnType<SharedModule["createRedis"]>;

/** "raw" and "cascade" in the comparison; the ablation bench uses its own variant names. */
export type Side = string;

export interface RoundResult {
  side: Side;
  round: number;
  ok: boolean;
  error?: string;
  jobs: number;
  /** From queue resume to the N-th finished job; null when the round failed. */
  seconds: number | null;
  jobs_per_second: number | null;
  completed: number;
  failed: number;
  /** Return values by `status` (Cascade's JobOutcome), "other" for anything without one. */
  outcomes: Record<string, number>;
  /** CPU time of this Node process (worker + bench) during the timed interval. */
  node_cpu_seconds: number;
  /** Redis server counters over the timed interval (private Redis only). */
  redis: (RedisDelta & { commands_per_job: number }) | null;
  prefill_ms: number;
  startup_ms: number;
  /** The machine's 1-minute load average when the round started: other load makes rounds noisy. */
  load_average_1m: number;
  queue_after: Record<string, number>;
  profile?: string;
}

export interface DrainSubject {
  worker: Worker;
  /** Graceful stop (what a deploy does); the round forces a close when it times out. */
  close(): Promise<void>;
}

export interface DrainParams {
  side: Side;
  round: number;
  jobs: number;
  timeoutMs: number;
  queue: Queue;
  /** A connection used only for INFO; undefined when Redis is shared and its counters mean nothing. */
  statsRedis: RedisClient | undefined;
  /** Profiles the timed interval when set (a diagnostic: profiling slows the round down). */
  profiler?: IntervalProfiler | undefined;
  prefill(): Promise<void>;
  /** Builds and starts the worker (it finds the queue paused and waits). */
  start(): DrainSubject;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function drainRound(params: DrainParams): Promise<RoundResult> {
  const { queue, jobs } = params;
  const prefillStarted = performance.now();
  await queue.pause();
  await params.prefill();
  const prefillMs = performance.now() - prefillStarted;

  let completed = 0;
  let failed = 0;
  let endedAt = 0;
  const outcomes: Record<string, number> = {};
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const onFinished = () => {
    if (completed + failed === jobs) {
      endedAt = performance.now();
      finish();
    }
  };

  const startupStarted = performance.now();
  const subject = params.start();
  subject.worker.on("completed", (_job: unknown, result: unknown) => {
    completed += 1;
    const status = (result as { status?: unknown } | undefined)?.status;
    const key = typeof status === "string" ? status : "other";
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    onFinished();
  });
  subject.worker.on("failed", () => {
    failed += 1;
    onFinished();
  });
  await withTimeout(subject.worker.waitUntilReady(), 10_000, "worker startup");
  const startupMs = performance.now() - startupStarted;

  const loadAverage = os.loadavg()[0] ?? 0;
  const before = params.statsRedis ? await snapshotRedis(params.statsRedis) : undefined;
  await params.profiler?.start();
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  await queue.resume();

  let error: string | undefined;
  try {
    await withTimeout(finished, params.timeoutMs, `draining ${jobs} jobs`);
  } catch (caught) {
    error = `${(caught as Error).message} (finished ${completed + failed} of ${jobs})`;
  }
  const cpu = process.cpuUsage(cpuBefore);
  const profile = await params.profiler?.stop(`${params.side}-round${params.round}`);
  const after = params.statsRedis ? await snapshotRedis(params.statsRedis) : undefined;

  if (error) await withTimeout(subject.worker.close(true), 10_000, "forced worker close").catch(() => {});
  else await withTimeout(subject.close(), 30_000, "worker close");

  const counts = (await queue.getJobCounts(
    "completed",
    "failed",
    "active",
    "wait",
    "prioritized",
    "delayed",
  )) as Record<string, number>;
  if (!error && failed > 0) error = `${failed} of ${jobs} jobs failed`;
  const ok = error === undefined;
  const seconds = ok ? (endedAt - startedAt) / 1000 : null;
  const delta = before && after ? redisDelta(before, after) : undefined;
  return {
    side: params.side,
    round: params.round,
    ok,
    ...(error ? { error } : {}),
    jobs,
    seconds,
    jobs_per_second: seconds ? jobs / seconds : null,
    completed,
    failed,
    outcomes,
    node_cpu_seconds: (cpu.user + cpu.system) / 1e6,
    redis: delta ? { ...delta, commands_per_job: delta.commands / jobs } : null,
    prefill_ms: Math.round(prefillMs),
    startup_ms: Math.round(startupMs),
    load_average_1m: Number(loadAverage.toFixed(2)),
    queue_after: counts,
    ...(profile ? { profile } : {}),
  };
}
