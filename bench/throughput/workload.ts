/**
 * What both sides of the throughput bench process: one config with a zero-latency, never-failing
 * simulated provider, and job data built the way POST /v1/jobs builds it (packages/api
 * routes/jobs.ts) for a typical small chat request.
 */
import type { BenchModules } from "../support/modules.js";

type JobData = import("../../packages/shared/dist/index.js").JobData;
type Config = import("../../packages/shared/dist/index.js").Config;

export const BENCH_MODEL = "bench-model";

/** The inline config (`loadConfig(env, { raw })`). */
export function benchConfigFile() {
  return {
    providers: {
      "bench-sim": {
        type: "simulated",
        simulate: { latency_ms: 0, error_rate: 0, rate_limit_rate: 0, hang_rate: 0 },
      },
    },
    models: {
      [BENCH_MODEL]: {
        provider: "bench-sim",
        name: "sim-bench-1",
        price: { input_per_mtok: 0.15, output_per_mtok: 0.6 },
        context_window: 128000,
        capabilities: ["tools", "json"],
      },
    },
    routes: { default: { chain: [{ model: BENCH_MODEL, timeout_ms: 30000 }] } },
  };
}

const request = {
  messages: [
    {
      role: "system" as const,
      content: "You are a concise assistant for a support team. Answer in two sentences.",
    },
    {
      role: "user" as const,
      content:
        "A customer writes: my order arrived with a cracked screen protector and the box was dented. " +
        "They ask whether they should send it back or wait for a replacement part. What do we tell them?",
    },
  ],
  max_tokens: 64,
};

/** One job's data as the API enqueues it (chain resolved from the request, no model named → route default). */
export function buildJobData(modules: BenchModules, config: Config, now: number): JobData {
  const { shared } = modules;
  const body = shared.createJobBodySchema.parse({ request });
  const resolved = shared.resolveChain(config.file, body);
  return shared.jobDataSchema.parse({
    v: 1,
    tenant: "default",
    request: body.request,
    route: resolved.route,
    chain: resolved.chain,
    policy: resolved.policy,
    priority: body.priority,
    created_at: shared.unixSeconds(now),
    deadline_at: now + resolved.deadline_ms,
  });
}
