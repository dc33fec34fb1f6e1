/**
 * Where the Cascade worker's time goes, by ablation: the ladder of ablation-variants.ts run in
 * interleaved rounds against one private Redis, each step's median jobs/s turned into µs of wall
 * time per job and compared with the step before. A diagnostic for docs/benchmarks.md, not a
 * target check. Usage: node --import tsx bench/throughput/ablation.ts [--rounds 5] [--jobs 5000]
 */
import { buildPackages, loadModules } from "../support/modules.js";
import { startBenchRedis } from "../support/redis-server.js";
import { machineInfo, writeResults } from "../support/results.js";
import { median } from "../support/stats.js";
import { buildLadder } from "./ablation-variants.js";
import type { RoundResult } from "./drain.js";
import { parseOptions } from "./options.js";
import { roundLine } from "./report.js";
import { runCascadeRound, runRawRound } from "./sides.js";

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.build) buildPackages();
  const modules = await loadModules();
  const redis = await startBenchRedis();
  const statsRedis = redis.spawned ? modules.shared.createRedis(redis.url) : undefined;
  const ladder = await buildLadder(modules);
  try {
    console.log(
      `ablation: ${options.jobs} jobs per round, concurrency ${options.concurrency}, ${options.rounds} round(s) of ${ladder.steps.length} steps`,
    );
    const runId = Date.now().toString(36);
    const results: RoundResult[] = [];
    // Round 0 is the warm-up (options.warmup jobs per step), left out of the medians.
    for (let round = options.warmup > 0 ? 0 : 1; round <= options.rounds; round += 1) {
      const roundOptions = round === 0 ? { ...options, jobs: options.warmup } : options;
      for (const step of ladder.steps) {
        const context = {
          modules,
          redisUrl: redis.url,
          statsRedis,
          options: roundOptions,
          runId,
          round,
          profiler: undefined,
        };
        const result =
          step.kind === "raw"
            ? await runRawRound(context, step.variant)
            : await runCascadeRound(
                { ...context, options: { ...roundOptions, logLevel: step.logLevel } },
                step.label,
              );
        results.push(result);
        console.log(roundLine(result));
      }
    }
    console.log("");
    console.log(
      "step              median jobs/s   µs/job  Δ µs/job  node cpu µs/job  redis cpu µs/job  note",
    );
    const rows = [];
    let previous: number | undefined;
    for (const step of ladder.steps) {
      const label = step.kind === "raw" ? step.variant.label : step.label;
      const ok = results.filter((result) => result.side === label && result.ok && result.round > 0);
      const rate = median(ok.map((result) => result.jobs_per_second as number));
      const wallUs = 1e6 / rate;
      const cpuUs = median(ok.map((result) => (result.node_cpu_seconds * 1e6) / result.jobs));
      const redisUs = median(
        ok.map((result) => ((result.redis?.cpuSeconds ?? Number.NaN) * 1e6) / result.jobs),
      );
      const delta = previous === undefined ? undefined : wallUs - previous;
      previous = wallUs;
      rows.push({
        step: label,
        note: step.note,
        median_jobs_per_second: rate,
        wall_us_per_job: wallUs,
        delta_us_per_job: delta ?? null,
        node_cpu_us_per_job: cpuUs,
        redis_cpu_us_per_job: redisUs,
      });
      console.log(
        `${label.padEnd(16)}  ${Math.round(rate).toString().padStart(14)}  ${wallUs.toFixed(1).padStart(7)}  ${(delta === undefined ? "" : `${delta >= 0 ? "+" : ""}${delta.toFixed(1)}`).padStart(8)}  ${cpuUs.toFixed(1).padStart(15)}  ${redisUs.toFixed(1).padStart(16)}  ${step.note}`,
      );
    }
    const path = writeResults("throughput-ablation", {
      bench: "throughput-ablation",
      finished_at: new Date().toISOString(),
      options,
      machine: machineInfo(),
      versions: modules.versions,
      rows,
      rounds: results,
    });
    console.log(`results: ${path}`);
    return results.every((result) => result.ok) ? 0 : 1;
  } finally {
    ladder.close();
    await statsRedis?.quit().catch(() => statsRedis.disconnect());
    await redis.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`ablation bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
