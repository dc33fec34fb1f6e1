/**
 * `pnpm bench:throughput`: jobs/s of Cascade's completion worker (simulated provider, zero
 * latency) against raw BullMQ with a no-op processor, on the same Redis, at the same concurrency,
 * in interleaved rounds (raw, cascade, raw, cascade, ...). Prints per-round and median figures and
 * the ratio against the target; writes bench/results/throughput-<timestamp>.json. It asserts
 * nothing and always stops: every round has a time limit and a timed-out round is reported failed.
 * See docs/benchmarks.md.
 */

import { buildPackages, loadModules } from "../support/modules.js";
import { printPreamble } from "../support/preamble.js";
import { startBenchRedis } from "../support/redis-server.js";
import { machineInfo, writeResults } from "../support/results.js";
import type { RoundResult, Side } from "./drain.js";
import { parseOptions } from "./options.js";
import { roundLine, summarize, summaryLines } from "./report.js";
import { runCascadeRound, runRawRound } from "./sides.js";

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.build) buildPackages();
  const modules = await loadModules();
  const { shared } = modules;
  const redis = await startBenchRedis();
  const statsRedis = redis.spawned ? shared.createRedis(redis.url) : undefined;
  try {
    const check = await shared.checkRedis(redis.url);
    for (const warning of check.warnings) console.warn(warning);
    const redisVersion = /redis_version:(\S+)/.exec(
      (await (statsRedis ?? shared.createRedis(redis.url)).info("server")) as string,
    )?.[1];
    const machine = machineInfo();
    const runId = Date.now().toString(36);
    const sides: Side[] = options.only === "both" ? ["raw", "cascade"] : [options.only];
    console.log(
      `throughput bench: ${options.jobs} jobs per round, concurrency ${options.concurrency}, ${options.rounds} round(s) of ${sides.join(" + ")}; ` +
        `Cascade LOG_LEVEL=${options.logLevel} to /dev/null`,
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
    const warmups: RoundResult[] = [];
    if (options.warmup > 0) {
      const warmupOptions = { ...options, jobs: options.warmup };
      for (const side of sides) {
        const context = {
          modules,
          redisUrl: redis.url,
          statsRedis,
          options: warmupOptions,
          runId,
          round: 0,
          profiler: undefined,
        };
        const result = side === "raw" ? await runRawRound(context) : await runCascadeRound(context);
        warmups.push(result);
        console.log(`${roundLine(result)}  (warm-up, not counted)`);
      }
    }
    const results: RoundResult[] = [];
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const side of sides) {
        const context = { modules, redisUrl: redis.url, statsRedis, options, runId, round, profiler };
        const result = side === "raw" ? await runRawRound(context) : await runCascadeRound(context);
        results.push(result);
        console.log(roundLine(result));
      }
    }
    const summary = summarize(results, options);
    console.log("");
    for (const line of summaryLines(summary, options)) console.log(line);
    const path = writeResults("throughput", {
      bench: "throughput",
      finished_at: new Date().toISOString(),
      options,
      machine,
      versions: { ...modules.versions, redis: redisVersion ?? null },
      redis: { spawned: redis.spawned, url: shared.redactRedisUrl(redis.url) },
      warmup_rounds: warmups,
      rounds: results,
      summary,
    });
    console.log(`results: ${path}`);
    return results.every((result) => result.ok) ? 0 : 1;
  } finally {
    await statsRedis?.quit().catch(() => statsRedis.disconnect());
    await redis.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`throughput bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
