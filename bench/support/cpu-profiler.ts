/**
 * V8 CPU profiles of just the measured interval (node --cpu-prof would also cover start-up,
 * pre-fill and clean-up), through the inspector of this same process.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

export interface IntervalProfiler {
  start(): Promise<void>;
  /** Stops and writes `<directory>/<name>.cpuprofile`; returns its path. */
  stop(name: string): Promise<string>;
}

/**
 * A sampling heap profile of the timed interval instead (`<name>.heapprofile`): every allocation
 * sampled (one per `samplingIntervalBytes` on average), those collected by a scavenge or a
 * mark-compact included, so it shows what a round allocates, not what it keeps. Summarise with
 * `node --import tsx bench/support/heap-summary.ts <file> --jobs <n>`.
 */
export function createHeapIntervalProfiler(
  directory: string,
  samplingIntervalBytes = 1024,
): IntervalProfiler {
  const session = new Session();
  let connected = false;
  return {
    async start() {
      if (!connected) {
        session.connect();
        connected = true;
        await session.post("HeapProfiler.enable");
      }
      // Node 20's typings lack the two include flags V8 takes.
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: samplingIntervalBytes,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      } as { samplingInterval: number });
    },
    async stop(name) {
      const { profile } = await session.post("HeapProfiler.stopSampling");
      mkdirSync(directory, { recursive: true });
      const path = join(directory, `${name}.heapprofile`);
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
  };
}

export function createIntervalProfiler(directory: string, samplingIntervalUs = 500): IntervalProfiler {
  const session = new Session();
  let connected = false;
  return {
    async start() {
      if (!connected) {
        session.connect();
        connected = true;
        await session.post("Profiler.enable");
        await session.post("Profiler.setSamplingInterval", { interval: samplingIntervalUs });
      }
      await session.post("Profiler.start");
    },
    async stop(name) {
      const { profile } = await session.post("Profiler.stop");
      mkdirSync(directory, { recursive: true });
      const path = join(directory, `${name}.cpuprofile`);
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
  };
}
