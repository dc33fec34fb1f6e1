import { parseArgs } from "node:util";
import {
  COMMON_OPTION_SPEC,
  COMMON_USAGE,
  type CommonBenchOptions,
  commonOptions,
} from "../support/common-options.js";
import { ABLATION_VARIANTS, OFF, ON, type Variant } from "./workload.js";

export interface ResilienceOptions extends CommonBenchOptions {
  /** Variant labels run in each round, in order (off, on; or the ablation ladder). */
  variants: string[];
  ablation: boolean;
}

const usage = `Usage: pnpm bench:resilience [options]
${COMMON_USAGE}
  --ablation          run the ladder instead of off/on: ${ABLATION_VARIANTS.map((variant) => variant.label).join(", ")}
  --only <label>      run one variant only (profiling; no ratio): off, on, or an ablation label`;

export const KNOWN_VARIANTS: Variant[] = [ON, ...ABLATION_VARIANTS];

export function variantByLabel(label: string): Variant {
  const variant = KNOWN_VARIANTS.find((candidate) => candidate.label === label);
  if (!variant) throw new Error(`unknown variant "${label}"`);
  return variant;
}

export function parseOptions(argv: string[]): ResilienceOptions {
  const { values } = parseArgs({
    args: argv,
    options: { ...COMMON_OPTION_SPEC, ablation: { type: "boolean" } },
    allowPositionals: false,
  });
  const common = commonOptions(values, usage);
  let variants = values.ablation ? ABLATION_VARIANTS.map((variant) => variant.label) : [OFF.label, ON.label];
  if (values.only !== undefined) {
    if (!KNOWN_VARIANTS.some((variant) => variant.label === values.only)) {
      throw new Error(`--only must be one of ${KNOWN_VARIANTS.map((v) => v.label).join(", ")}\n${usage}`);
    }
    variants = [values.only];
  }
  return { ...common, variants, ablation: values.ablation ?? false };
}
