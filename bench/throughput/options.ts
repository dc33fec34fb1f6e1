import { parseArgs } from "node:util";

export interface ThroughputOptions {
  jobs: number;
  concurrency: number;
  rounds: number;
  /** Jobs of an unmeasured first pair that gets both sides' code JIT-compiled; 0 skips it. */
  warmup: number;
  timeoutSeconds: number;
  /** Which sides run: both (the comparison) or one of them, for profiling a side alone. */
  only: "both" | "raw" | "cascade";
  /** Cascade's LOG_LEVEL; info is the real per-hop cost, silent is a diagnostic. */
  logLevel: string;
  build: boolean;
  /** Writes a CPU profile of each timed interval into this directory (diagnostic). */
  profileDirectory: string | undefined;
}

const usage = `Usage: pnpm bench:throughput [options]
  --jobs <n>          jobs per round and side (default 5000)
  --concurrency <n>   worker concurrency of both sides (default 50)
  --rounds <n>        interleaved raw/cascade pairs (default 3)
  --warmup <n>        jobs per side in an unmeasured warm-up pair first (default 1000; 0 = none)
  --timeout-s <n>     per-round limit; a round over it is reported as failed (default 120)
  --only <side>       raw | cascade: run one side only (profiling; no ratio)
  --log-level <lvl>   Cascade worker LOG_LEVEL (default info; others are diagnostics)
  --profile <dir>     write a CPU profile of each timed interval to <dir> (summarise with
                      node --import tsx bench/support/profile-summary.ts <file> --jobs <n>)
  --no-build          measure packages/*/dist as it is instead of running tsc -b first`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1)
    throw new Error(`--${name} must be a positive integer, got "${value}"\n${usage}`);
  return parsed;
}

export function parseOptions(argv: string[]): ThroughputOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      jobs: { type: "string" },
      concurrency: { type: "string" },
      rounds: { type: "string" },
      warmup: { type: "string" },
      "timeout-s": { type: "string" },
      only: { type: "string" },
      "log-level": { type: "string" },
      "no-build": { type: "boolean" },
      profile: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const only = values.only ?? "both";
  if (only !== "both" && only !== "raw" && only !== "cascade")
    throw new Error(`--only must be raw or cascade\n${usage}`);
  return {
    jobs: positiveInt("jobs", values.jobs, 5000),
    concurrency: positiveInt("concurrency", values.concurrency, 50),
    rounds: positiveInt("rounds", values.rounds, 3),
    warmup: values.warmup === "0" ? 0 : positiveInt("warmup", values.warmup, 1000),
    timeoutSeconds: positiveInt("timeout-s", values["timeout-s"], 120),
    only,
    logLevel: values["log-level"] ?? "info",
    build: !values["no-build"],
    profileDirectory: values.profile,
  };
}
