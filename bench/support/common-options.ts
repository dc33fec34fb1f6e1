/** Options every drain bench takes: their parseArgs spec and their parsing. */
export interface CommonBenchOptions {
  jobs: number;
  concurrency: number;
  rounds: number;
  /** Jobs per side in an unmeasured first pair that gets the code JIT-compiled; 0 skips it. */
  warmup: number;
  timeoutSeconds: number;
  /** The worker's LOG_LEVEL; info is the real per-hop cost, silent is a diagnostic. */
  logLevel: string;
  build: boolean;
  /** Writes a CPU profile of each timed interval into this directory (diagnostic). */
  profileDirectory: string | undefined;
  /** Writes a sampling heap profile (allocations) of each timed interval instead (diagnostic). */
  heapProfile: boolean;
}

export const COMMON_OPTION_SPEC = {
  jobs: { type: "string" },
  concurrency: { type: "string" },
  rounds: { type: "string" },
  warmup: { type: "string" },
  "timeout-s": { type: "string" },
  only: { type: "string" },
  "log-level": { type: "string" },
  "no-build": { type: "boolean" },
  profile: { type: "string" },
  "heap-profile": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export const COMMON_USAGE = `  --jobs <n>          jobs per round and side (default 5000)
  --concurrency <n>   worker concurrency (default 50)
  --rounds <n>        interleaved pairs (default 3)
  --warmup <n>        jobs per side in an unmeasured warm-up pair first (default 1000; 0 = none)
  --timeout-s <n>     per-round limit; a round over it is reported as failed (default 120)
  --log-level <lvl>   the worker's LOG_LEVEL (default info; others are diagnostics)
  --profile <dir>     write a CPU profile of each timed interval to <dir> (summarise with
                      node --import tsx bench/support/profile-summary.ts <file> --jobs <n>)
  --heap-profile      with --profile: sampled allocations instead of CPU (<dir>/<side>-round<n>.heapprofile;
                      summarise with node --import tsx bench/support/heap-summary.ts <file> --jobs <n>)
  --no-build          measure packages/*/dist as it is instead of running tsc -b first`;

function positiveInt(name: string, value: string | undefined, fallback: number, usage: string): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) {
    throw new Error(`--${name} must be a positive integer, got "${value}"\n${usage}`);
  }
  return parsed;
}

type CommonValues = {
  jobs?: string;
  concurrency?: string;
  rounds?: string;
  warmup?: string;
  "timeout-s"?: string;
  "log-level"?: string;
  "no-build"?: boolean;
  profile?: string;
  "heap-profile"?: boolean;
  help?: boolean;
};

/** The common options from parsed values; prints the usage and exits on --help. */
export function commonOptions(values: CommonValues, usage: string): CommonBenchOptions {
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return {
    jobs: positiveInt("jobs", values.jobs, 5000, usage),
    concurrency: positiveInt("concurrency", values.concurrency, 50, usage),
    rounds: positiveInt("rounds", values.rounds, 3, usage),
    warmup: values.warmup === "0" ? 0 : positiveInt("warmup", values.warmup, 1000, usage),
    timeoutSeconds: positiveInt("timeout-s", values["timeout-s"], 120, usage),
    logLevel: values["log-level"] ?? "info",
    build: !values["no-build"],
    profileDirectory: values.profile,
    heapProfile: values["heap-profile"] === true,
  };
}
