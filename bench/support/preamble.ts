import os from "node:os";
import { createHeapIntervalProfiler, createIntervalProfiler } from "./cpu-profiler.js";
import type { machineInfo } from "./results.js";

/**
 * The lines every drain bench prints before its rounds (machine, versions, Redis, a warning when
 * the machine is busy), and the profiler when one was asked for.
 */
export function printPreamble(options: {
  machine: ReturnType<typeof machineInfo>;
  versions: { bullmq: string; ioredis: string };
  redisVersion: string | undefined;
  redis: { spawned: boolean; url: string };
  redactRedisUrl: (url: string) => string;
  profileDirectory: string | undefined;
  heapProfile?: boolean;
}): ReturnType<typeof createIntervalProfiler> | undefined {
  const { machine, versions, redis } = options;
  console.log(
    `machine: ${machine.cpus} cpus (${machine.cpu_model}), node ${machine.node}, bullmq ${versions.bullmq}, ioredis ${versions.ioredis}, ` +
      `redis ${options.redisVersion ?? "?"} ${redis.spawned ? "(private, spawned)" : `at ${options.redactRedisUrl(redis.url)} (shared: no server counters)`}`,
  );
  const [load] = os.loadavg();
  if ((load ?? 0) > 0.5) {
    console.log(
      `note: load average ${load?.toFixed(2)} before starting: other work on this machine competes for the ${machine.cpus} cpus and makes rounds noisy`,
    );
  }
  if (!options.profileDirectory) return undefined;
  console.log(
    `profiling the timed intervals${options.heapProfile ? " (allocations)" : ""} into ${options.profileDirectory} (slows the rounds down)`,
  );
  return options.heapProfile
    ? createHeapIntervalProfiler(options.profileDirectory)
    : createIntervalProfiler(options.profileDirectory);
}
