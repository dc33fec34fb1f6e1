import { parseArgs } from "node:util";

export const TARGETS = ["direct", "cascade", "portkey"] as const;
export type TargetName = (typeof TARGETS)[number];
export const MODES = ["json", "stream"] as const;
export type Mode = (typeof MODES)[number];

export interface GatewayBenchOptions {
  /** Length of each measured throughput run and of each fixed-rate run. */
  seconds: number;
  /** Unmeasured load before each target's throughput run (same connections). */
  warmupSeconds: number;
  rounds: number;
  /** autocannon connections for the throughput runs. */
  connections: number;
  /** Requests per second of the fixed-rate (paced) runs; 0 skips them. */
  rate: number;
  targets: TargetName[];
  modes: Mode[];
  /** Cascade's LOG_LEVEL (its log goes to /dev/null). */
  logLevel: string;
  build: boolean;
  /** After the rounds, one extra throughput run per mode of Cascade and Portkey under the CPU profiler. */
  profileDirectory: string | undefined;
}

const usage = `Usage: pnpm bench:gateway [options]
  --seconds <n>       length of each measured run, throughput and fixed-rate (default 8)
  --warmup <n>        seconds of unmeasured load before each throughput run (default 2; 0 = none)
  --rounds <n>        interleaved rounds, the target order rotated each round (default 3)
  --connections <n>   autocannon connections for the throughput runs (default 50)
  --rate <n>          requests/s of the fixed-rate runs (default 500; 0 skips them)
  --only <list>       targets, comma-separated: direct,cascade,portkey (default all three)
  --modes <list>      json,stream (default both)
  --log-level <lvl>   Cascade's LOG_LEVEL, written to /dev/null (default warn)
  --profile <dir>     after the rounds, profile one throughput run per mode of Cascade and of
                      Portkey (not counted) into <dir>, and print where the time goes
  --no-build          measure packages/*/dist as it is instead of running tsc -b packages/api first`;

function count(name: string, value: string | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < (allowZero ? 0 : 1)) {
    throw new Error(
      `--${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got "${value}"\n${usage}`,
    );
  }
  return parsed;
}

function list<T extends string>(name: string, value: string | undefined, known: readonly T[]): T[] {
  if (value === undefined) return [...known];
  const items = value.split(",").map((item) => item.trim());
  for (const item of items) {
    if (!known.includes(item as T))
      throw new Error(`--${name}: unknown "${item}" (one of ${known.join(", ")})`);
  }
  // Keep the canonical order: direct first, so it is always the baseline of its round.
  return known.filter((item) => items.includes(item));
}

export function parseOptions(argv: string[]): GatewayBenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: "string" },
      warmup: { type: "string" },
      rounds: { type: "string" },
      connections: { type: "string" },
      rate: { type: "string" },
      only: { type: "string" },
      modes: { type: "string" },
      "log-level": { type: "string" },
      profile: { type: "string" },
      "no-build": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return {
    seconds: count("seconds", values.seconds, 8),
    warmupSeconds: count("warmup", values.warmup, 2, true),
    rounds: count("rounds", values.rounds, 3),
    connections: count("connections", values.connections, 50),
    rate: count("rate", values.rate, 500, true),
    targets: list("only", values.only, TARGETS),
    modes: list("modes", values.modes, MODES),
    logLevel: values["log-level"] ?? "warn",
    build: !values["no-build"],
    profileDirectory: values.profile,
  };
}
