/**
 * V8 profiles of just the measured interval (node --cpu-prof would also cover start-up, pre-fill
 * and clean-up), through the inspector of this same process: CPU samples, or sampled allocations.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

export interface IntervalProfiler {
  start(): Promise<void>;
  /** Stops and writes `<directory>/<name>.cpuprofile` (or `.heapprofile`); returns its path. */
  stop(name: string): Promise<string>;
}

/** What one kind of profile does through the session: set up once, start, stop with its profile. */
interface ProfileKind {
  extension: string;
  enable(session: Session): Promise<void>;
  start(session: Session): Promise<void>;
  stop(session: Session): Promise<unknown>;
}

function intervalProfiler(directory: string, kind: ProfileKind): IntervalProfiler {
  const session = new Session();
  let connected = false;
  return {
    async start() {
      if (!connected) {
        session.connect();
        connected = true;
        await kind.enable(session);
      }
      await kind.start(session);
    },
    async stop(name) {
      const profile = await kind.stop(session);
      mkdirSync(directory, { recursive: true });
      const path = join(directory, `${name}.${kind.extension}`);
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
  };
}

export function createIntervalProfiler(directory: string, samplingIntervalUs = 500): IntervalProfiler {
  return intervalProfiler(directory, {
    extension: "cpuprofile",
    async enable(session) {
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: samplingIntervalUs });
    },
    async start(session) {
      await session.post("Profiler.start");
    },
    async stop(session) {
      return (await session.post("Profiler.stop")).profile;
    },
  });
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
  return intervalProfiler(directory, {
    extension: "heapprofile",
    async enable(session) {
      await session.post("HeapProfiler.enable");
    },
    async start(session) {
      // Node 20's typings lack the two include flags V8 takes.
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: samplingIntervalBytes,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      } as { samplingInterval: number });
    },
    async stop(session) {
      return (await session.post("HeapProfiler.stopSampling")).profile;
    },
  });
}
