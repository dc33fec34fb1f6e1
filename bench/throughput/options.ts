import { parseArgs } from "node:util";
import {
  COMMON_OPTION_SPEC,
  COMMON_USAGE,
  type CommonBenchOptions,
  commonOptions,
} from "../support/common-options.js";

export interface ThroughputOptions extends CommonBenchOptions {
  /** Which sides run: both (the comparison) or one of them, for profiling a side alone. */
  only: "both" | "raw" | "cascade";
}

const usage = `Usage: pnpm bench:throughput [options]
${COMMON_USAGE}
  --only <side>       raw | cascade: run one side only (profiling; no ratio)`;

export function parseOptions(argv: string[]): ThroughputOptions {
  const { values } = parseArgs({ args: argv, options: COMMON_OPTION_SPEC, allowPositionals: false });
  const common = commonOptions(values, usage);
  const only = values.only ?? "both";
  if (only !== "both" && only !== "raw" && only !== "cascade") {
    throw new Error(`--only must be raw or cascade\n${usage}`);
  }
  return { ...common, only };
}
