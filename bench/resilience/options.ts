import { parseArgs } from "node:util";
import { ABLATION_VARIANTS, OFF, ON, type Variant } from "./workload.js";

export interface ResilienceOptions {
  jobs: number;
  concurrency: number;
  rounds: number;
  /** Jobs per variant in an unmeasured first round that JIT-compiles every side; 0 skips it. */
  warmup: number;
  timeoutSeconds: number;
  /** Variant labels run in each round, in order (off, on; or the ablation ladder). */
  variants: string[];
  ablation: boolean;
  logLevel: string;
  build: boolean;
  profileDirectory: string | undefined;
}

const usage = `Usage: pnpm bench:resilience [options]
  --jobs <n>          jobs per round and side (default 5000)
  --concurrency <n>   worker concurrency (default 50)
  --rounds <n>        interleaved off/on pairs (default 3)
  --warmup <n>        jobs per side in an unmeasured warm-up pair first (default 1000; 0 = none)
  --timeout-s <n>     per-round limit; a round over it is reported as failed (default 120)
  --ablation          run the ladder instead of off/on: ${ABLATION_VARIANTS.map((variant) => variant.label).join(", ")}
  --only <label>      run one variant only (profiling; no ratio): off, on, or an ablation label
  --log-level <lvl>   the worker's LOG_LEVEL (default info, as the throughput bench)
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

export const KNOWN_VARIANTS: Variant[] = [ON, ...ABLATION_VARIANTS];

export function variantByLabel(label: string): Variant {
  const variant = KNOWN_VARIANTS.find((candidate) => candidate.label === label);
  if (!variant) throw new Error(`unknown variant "${label}"`);
  return variant;
}

export function parseOptions(argv: string[]): ResilienceOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      jobs: { type: "string" },
      concurrency: { type: "string" },
      rounds: { type: "string" },
      warmup: { type: "string" },
      "timeout-s": { type: "string" },
      ablation: { type: "boolean" },
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
  let variants = values.ablation ? ABLATION_VARIANTS.map((variant) => variant.label) : [OFF.label, ON.label];
  if (values.only !== undefined) {
    if (!KNOWN_VARIANTS.some((variant) => variant.label === values.only))
      throw new Error(`--only must be one of ${KNOWN_VARIANTS.map((v) => v.label).join(", ")}\n${usage}`);
    variants = [values.only];
  }
  return {
    jobs: positiveInt("jobs", values.jobs, 5000),
    concurrency: positiveInt("concurrency", values.concurrency, 50),
    rounds: positiveInt("rounds", values.rounds, 3),
    warmup: values.warmup === "0" ? 0 : positiveInt("warmup", values.warmup, 1000),
    timeoutSeconds: positiveInt("timeout-s", values["timeout-s"], 120),
    variants,
    ablation: values.ablation ?? false,
    logLevel: values["log-level"] ?? "info",
    build: !values["no-build"],
    profileDirectory: values.profile,
  };
}
