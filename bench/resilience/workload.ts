/**
 * What the resilience bench runs: the throughput bench's workload (zero-latency simulated
 * provider, one model, the same request) with shared limits layered on, and jobs that carry a
 * tenant and an end user so tenant and per-user budgets apply.
 *
 * Every limit is set so high that it never denies: the Lua scripts read and update every
 * breaker, bucket and budget on every hop, but no job ever waits. What is measured is the cost
 * of consulting them.
 */
import type { BenchModules } from "../support/modules.js";
import { BENCH_MODEL, benchConfigFile, buildJobData } from "../throughput/workload.js";

export { BENCH_MODEL };

type JobData = import("../../packages/shared/dist/index.js").JobData;
type Config = import("../../packages/shared/dist/index.js").Config;

export const BENCH_PROVIDER = "bench-sim";
export const BENCH_TENANT = "bench-tenant";
/** Jobs are spread over this many end users (user budgets: two spend keys each). */
export const BENCH_USERS = 100;

/** rpm/tpm for the provider and the model: consulted on every hop, never short. */
export const NEVER_DENYING_LIMITS = { rpm: 1_000_000_000, tpm: 1_000_000_000_000 } as const;
/** The breaker defaults, spelt out. */
export const BENCH_BREAKER = { failure_threshold: 0.5, min_requests: 10, window_ms: 30_000, open_ms: 15_000 };
export const NEVER_DENYING_BUDGET = { daily_usd: 1e9, monthly_usd: 1e9 } as const;

/** Which parts of the shared limits a variant configures (a breaker always guards the provider). */
export interface Layers {
  /** Model prices: every success has spend to record, so it settles (usage hash). */
  prices: boolean;
  /** rpm + tpm buckets on the provider and on the model (tpm reservations settle). */
  buckets: boolean;
  /** Tenant budget and per-user budget, daily and monthly (reservations settle). */
  budgets: boolean;
}

export interface Variant {
  /** Short name used in prefixes, round lines and the JSON. */
  label: string;
  description: string;
  /** Undefined: no `resilience` option at all (what the throughput bench runs). */
  layers: Layers | undefined;
}

export const ALL_LAYERS: Layers = { prices: true, buckets: true, budgets: true };

export const OFF: Variant = { label: "off", description: "no resilience option", layers: undefined };
export const ON: Variant = {
  label: "on",
  description: "breaker + rpm/tpm buckets (provider, model) + tenant and user budgets + prices",
  layers: ALL_LAYERS,
};

/** The ablation ladder: each step adds one layer to the previous one. */
export const ABLATION_VARIANTS: Variant[] = [
  OFF,
  {
    label: "breakers",
    description: "breaker only, no prices (admit only: nothing to settle on a success)",
    layers: { prices: false, buckets: false, budgets: false },
  },
  {
    label: "usage",
    description: "breaker + prices (every success settles to record usage)",
    layers: { prices: true, buckets: false, budgets: false },
  },
  {
    label: "buckets",
    description: "breaker + prices + rpm/tpm buckets on provider and model",
    layers: { prices: true, buckets: true, budgets: false },
  },
  { ...ON, label: "all" },
];

/** The inline config of a variant; OFF runs with the full config (it just passes no resilience). */
export function resilienceConfigFile(layers: Layers = ALL_LAYERS) {
  const base = benchConfigFile();
  const provider = base.providers[BENCH_PROVIDER];
  const { price, ...model } = base.models[BENCH_MODEL];
  const limits = layers.buckets ? { limits: { ...NEVER_DENYING_LIMITS } } : {};
  return {
    ...base,
    providers: { [BENCH_PROVIDER]: { ...provider, breaker: { ...BENCH_BREAKER }, ...limits } },
    models: { [BENCH_MODEL]: { ...model, ...(layers.prices ? { price } : {}), ...limits } },
    tenants: {
      [BENCH_TENANT]: {
        // A tenant needs a key; the bench never goes through the API, so any digest will do.
        api_key_sha256: ["0".repeat(64)],
        ...(layers.budgets
          ? { budget: { ...NEVER_DENYING_BUDGET }, user_budget: { ...NEVER_DENYING_BUDGET } }
          : {}),
      },
    },
  };
}

/**
 * The throughput bench's job data (built the way POST /v1/jobs builds it) for the bench tenant,
 * one per end user: `jobData[index % BENCH_USERS]` is job `index`'s.
 */
export function buildUserJobData(modules: BenchModules, config: Config, now: number): JobData[] {
  const base = buildJobData(modules, config, now);
  return Array.from({ length: BENCH_USERS }, (_, index) =>
    modules.shared.jobDataSchema.parse({ ...base, tenant: BENCH_TENANT, user: `bench-user-${index}` }),
  );
}
