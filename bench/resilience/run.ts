/**
 * `pnpm bench:resilience`: what shared breakers, rpm/tpm buckets and budgets cost Cascade's
 * completion worker. The throughput bench's Cascade side (simulated provider, zero latency) runs
 * with no `resilience` option ("off") and with a Resilience whose config has every layer on but
 * never denies ("on"), in interleaved rounds on one Redis after an unmeasured warm-up pair.
 * Prints per-round and median figures, the ratio on/off and the target; writes
 * bench/results/resilience-<timestamp>.json. Asserts nothing; every round has a time limit.
 * `--ablation` runs a ladder of partial configurations instead. See docs/benchmarks.md.
 */

import { buildPackages, loadModules } from "../support/modules.js";
import { printPreamble } from "../support/preamble.js";
import { startBenchRedis } from "../support/redis-server.js";
import { machineInfo, writeResults } from "../support/results.js";
import { parseOptions, variantByLabel } from "./options.js";
import { roundLine, summarize, summaryLines } from "./report.js";
import { type ResilienceRoundResult, runResilienceRound } from "./round.js";
import { NEVER_DENYING_BUDGET, NEVER_DENYING_LIMITS, resilienceConfigFile } from "./workload.js";

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.build) buildPackages();
  const modules = await loadModules();
  const { shared } = modules;
  const redis = await startBenchRedis();
  const statsRedis = redis.spawned ? shared.createRedis(redis.url) : undefined;
  const infoRedis = statsRedis ?? shared.createRedis(redis.url);
  try {
    const check = await shared.checkRedis(redis.url);
    for (const warning of check.warnings) console.warn(warning);
    const redisVersion = /redis_version:(\S+)/.exec((await infoRedis.info("server")) as string)?.[1];
    const machine = machineInfo();
    const runId = Date.now().toString(36);
    const variants = options.variants.map(variantByLabel);
    console.log(
      `resilience bench: ${options.jobs} jobs per round, concurrency ${options.concurrency}, ${options.rounds} round(s) of ${options.variants.join(" + ")}; ` +
        `LOG_LEVEL=${options.logLevel} to /dev/null`,
    );
    for (const variant of variants) console.log(`  ${variant.label.padEnd(13)} ${variant.description}`);
    console.log(
      `  limits: rpm ${NEVER_DENYING_LIMITS.rpm}, tpm ${NEVER_DENYING_LIMITS.tpm}; budgets daily/monthly ${NEVER_DENYING_BUDGET.daily_usd} USD (never deny)`,
    );
    const profiler = printPreamble({
      machine,
      versions: modules.versions,
      redisVersion,
      redis,
      redactRedisUrl: shared.redactRedisUrl,
      profileDirectory: options.profileDirectory,
      heapProfile: options.heapProfile,
    });

    // As packages/worker/src/main.ts logs (buffered sonic-boom), but into /dev/null.
    const logDestination = shared.createLogDestination("/dev/null");
    const results: ResilienceRoundResult[] = [];
    // Round 0 is the warm-up (options.warmup jobs per variant), left out of every figure.
    for (let round = options.warmup > 0 ? 0 : 1; round <= options.rounds; round += 1) {
      const roundOptions = round === 0 ? { ...options, jobs: options.warmup } : options;
      for (const variant of variants) {
        const result = await runResilienceRound(
          {
            modules,
            redisUrl: redis.url,
            statsRedis,
            options: roundOptions,
            runId,
            round,
            profiler: round === 0 ? undefined : profiler,
            logDestination,
          },
          variant,
        );
        results.push(result);
        console.log(roundLine(result, round === 0 ? "  (warm-up, not counted)" : ""));
      }
    }
    const summary = summarize(results, options.variants);
    console.log("");
    for (const line of summaryLines(summary)) console.log(line);
    const path = writeResults("resilience", {
      bench: "resilience",
      finished_at: new Date().toISOString(),
      options,
      machine,
      versions: { ...modules.versions, redis: redisVersion ?? null },
      redis: { spawned: redis.spawned, url: shared.redactRedisUrl(redis.url) },
      config: Object.fromEntries(
        variants.map((variant) => [variant.label, resilienceConfigFile(variant.layers)]),
      ),
      variants: variants.map(({ label, description, layers }) => ({
        label,
        description,
        layers: layers ?? null,
      })),
      warmup_rounds: results.filter((result) => result.round === 0),
      rounds: results.filter((result) => result.round > 0),
      summary,
    });
    console.log(`results: ${path}`);
    logDestination.flush();
    const problems = results.some((result) => !result.ok || (result.checks?.problems.length ?? 0) > 0);
    return problems ? 1 : 0;
  } finally {
    if (infoRedis !== statsRedis) await infoRedis.quit().catch(() => infoRedis.disconnect());
    await statsRedis?.quit().catch(() => statsRedis.disconnect());
    await redis.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`resilience bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
