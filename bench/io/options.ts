/** Options of `pnpm bench:io`. */
import { parseArgs } from "node:util";

export interface IoOptions {
  /** Worker concurrencies to measure, each in its own interleaved rounds. */
  concurrencies: number[];
  rounds: number;
  /** The upstream's answer time (the fake's delay, and the raw worker's timer), ms. */
  latencyMs: number;
  /** Seconds from resuming the queue to the start of the measured window (ramp-up left out). */
  warmSeconds: number;
  /** Length of the measured window, s. */
  measureSeconds: number;
  only: "both" | "raw" | "cascade";
  logLevel: string;
  build: boolean;
  /** Writes a CPU profile of each Cascade worker's measured window into this directory. */
  profileDirectory: string | undefined;
  /** The Cascade worker's entry point (a what-if build); default packages/worker/dist/main.js. */
  workerEntry: string | undefined;
  /**
   * DIAGNOSTIC: both workers run with --expose-gc and memory is also sampled after a forced full
   * GC (about once a second in the window), so the per-job figure is what the process retains.
   */
  gcSamples: boolean;
  /** DIAGNOSTIC: heap snapshots of the Cascade worker (idle, and mid-window of round 1) here. */
  heapSnapshotDirectory: string | undefined;
  /**
   * DIAGNOSTIC: the raw worker's processor also spins the CPU this many µs after its timer (what
   * a job's own processing costs), to show how the share of ideal falls with CPU per job.
   */
  rawBurnUs: number;
}

export const IO_USAGE = `pnpm bench:io [options]
  --concurrency <list>  worker concurrencies, comma-separated (default 500,2000)
  --rounds <n>          interleaved raw/cascade pairs per concurrency (default 3)
  --latency-ms <n>      upstream answer time and the raw worker's timer (default 200)
  --warm-s <n>          seconds after the queue resumes before measuring (default 2)
  --measure-s <n>       measured window (default 5)
  --only raw|cascade    one side only (diagnostic)
  --log-level <lvl>     Cascade worker's LOG_LEVEL (default info, written to /dev/null)
  --profile <dir>       CPU profile of the Cascade worker's measured window (<dir>/io-c<n>-r<n>-1.cpuprofile)
  --worker-entry <file> run this build of the worker instead of packages/worker/dist/main.js (what-ifs)
  --gc-samples          DIAGNOSTIC: workers run with --expose-gc; memory is also read after a forced full GC
                        (~1/s in the window, which slows them): heap and RSS retained per in-flight job
  --heap-snapshot <dir> DIAGNOSTIC (implies --gc-samples): heap snapshots of the Cascade worker, idle before
                        round 1 and in its window (<dir>/io-c<n>-cascade-<k>.heapsnapshot)
  --raw-burn-us <n>     DIAGNOSTIC: the raw worker also spins the CPU <n> µs per job after its timer
                        (a stand-in for a job's own processing; default 0)
  --no-build            measure packages/*/dist as it is instead of running tsc -b first`;

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0)
    throw new Error(`--${name} must be a positive number\n${IO_USAGE}`);
  return parsed;
}

function nonNegative(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new Error(`--${name} must be a number of at least 0\n${IO_USAGE}`);
  return parsed;
}

export function parseIoOptions(argv: string[]): IoOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      concurrency: { type: "string" },
      rounds: { type: "string" },
      "latency-ms": { type: "string" },
      "warm-s": { type: "string" },
      "measure-s": { type: "string" },
      only: { type: "string" },
      "log-level": { type: "string" },
      "no-build": { type: "boolean" },
      profile: { type: "string" },
      "worker-entry": { type: "string" },
      "gc-samples": { type: "boolean" },
      "heap-snapshot": { type: "string" },
      "raw-burn-us": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(IO_USAGE);
    process.exit(0);
  }
  const concurrencies = (values.concurrency ?? "500,2000").split(",").map((part) => {
    const parsed = Number(part.trim());
    if (!Number.isInteger(parsed) || parsed < 1)
      throw new Error(`--concurrency: "${part}" is not a positive integer`);
    return parsed;
  });
  const only = values.only ?? "both";
  if (only !== "both" && only !== "raw" && only !== "cascade")
    throw new Error(`--only must be raw or cascade`);
  return {
    concurrencies,
    rounds: Math.round(positive("rounds", values.rounds, 3)),
    latencyMs: positive("latency-ms", values["latency-ms"], 200),
    warmSeconds: positive("warm-s", values["warm-s"], 2),
    measureSeconds: positive("measure-s", values["measure-s"], 5),
    only,
    logLevel: values["log-level"] ?? "info",
    build: !values["no-build"],
    profileDirectory: values.profile,
    workerEntry: values["worker-entry"],
    gcSamples: values["gc-samples"] === true || values["heap-snapshot"] !== undefined,
    heapSnapshotDirectory: values["heap-snapshot"],
    rawBurnUs: nonNegative("raw-burn-us", values["raw-burn-us"]),
  };
}
