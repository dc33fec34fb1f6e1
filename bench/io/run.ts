/**
 * `pnpm bench:io`: I/O-bound efficiency and memory of one worker process. Cascade's worker
 * (`node packages/worker/dist/main.js`) runs completion jobs against a fake OpenAI-compatible
 * upstream that answers every call after `--latency-ms` (200), at concurrency 500 and 2,000;
 * beside it, in interleaved rounds on the same Redis, raw BullMQ whose processor waits the same
 * time on a timer. Printed as ratios against the baselines of the same run:
 *
 * - jobs/s against the ideal (concurrency / latency) and against raw BullMQ (target ≥ 0.97 each);
 * - RSS per in-flight job: (RSS at steady state − idle RSS) / jobs in BullMQ's active list, against
 *   raw BullMQ's and against the 20 KiB target.
 *
 * Also per job: worker CPU, the upstream's CPU and calls, Redis CPU and commands (private Redis).
 * Writes bench/results/io-<timestamp>.json. See docs/benchmarks.md.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnNode, waitForLine } from "../gateway/processes.js";
import { buildPackages, loadModules, repoRoot } from "../support/modules.js";
import { startBenchRedis } from "../support/redis-server.js";
import { machineInfo, writeResults } from "../support/results.js";
import { formatNumber, median, spread } from "../support/stats.js";
import { BENCH_MODEL } from "../throughput/workload.js";
import { parseIoOptions } from "./options.js";
import { type IoRoundResult, type IoSession, type IoSide, runIoRound, startIoSession } from "./round.js";

const TARGET_THROUGHPUT_RATIO = 0.97;
const TARGET_RSS_KIB = 20;

/** Cascade's config: one OpenAI-compatible provider on the slow fake, one model, route `default`. */
function ioConfig(upstreamPort: number) {
  return {
    providers: {
      "slow-openai": {
        type: "openai",
        base_url: `http://127.0.0.1:${upstreamPort}/v1`,
        api_key_env: "BENCH_UPSTREAM_KEY",
      },
    },
    models: {
      [BENCH_MODEL]: {
        provider: "slow-openai",
        name: "gpt-4o-mini",
        price: { input_per_mtok: 0.15, output_per_mtok: 0.6 },
        context_window: 128000,
        capabilities: ["tools", "json"],
      },
    },
    routes: { default: { chain: [{ model: BENCH_MODEL, timeout_ms: 30000 }] } },
  };
}

function roundLine(result: IoRoundResult): string {
  const label = result.side === "raw" ? "raw BullMQ" : "Cascade   ";
  const extra =
    result.side === "cascade"
      ? `  upstream cpu ${formatNumber(result.upstream_cpu_us_per_job ?? Number.NaN)} µs/job, calls/job ${formatNumber(result.upstream_calls_per_job ?? Number.NaN)}`
      : "";
  const redis = result.redis
    ? `  redis cpu ${formatNumber(result.redis.cpu_us_per_job)} µs/job, cmds/job ${formatNumber(result.redis.commands_per_job)}`
    : "";
  return (
    `c=${result.concurrency} round ${result.round}  ${label}  ${formatNumber(result.jobs_per_second)} jobs/s ` +
    `(ideal ${formatNumber(result.ideal_jobs_per_second)}, ${formatNumber(result.jobs_per_second / result.ideal_jobs_per_second)})  ` +
    `in flight ${result.in_flight}  rss idle ${formatNumber(result.idle_rss_mib)} MiB (fresh ${formatNumber(result.fresh_idle_rss_mib)}) → ${formatNumber(result.steady_rss_mib)} MiB ` +
    `= ${formatNumber(result.rss_kib_per_in_flight_job)} KiB/in-flight job (${formatNumber(result.rss_kib_per_in_flight_job_from_fresh)} from fresh)  worker cpu ${formatNumber(result.worker_cpu_us_per_job)} µs/job` +
    `${extra}${redis}  ok ${result.sampled_ok}${timingsLine(result)}${result.flag ? `  FLAGGED: ${result.flag}` : ""}${gcLine(result)}`
  );
}

/** Where a job's time went: active in BullMQ, of which the upstream call (Cascade). */
function timingsLine(result: IoRoundResult): string {
  const t = result.timings;
  if (!t.jobs) return "";
  const call =
    t.call_ms_p50 === null
      ? ""
      : `, call ${formatNumber(t.call_ms_p50)}/${formatNumber(t.call_ms_p90 ?? Number.NaN)}`;
  const reasons = Object.entries(t.retry_reasons)
    .map(([reason, count]) => `${reason} ${count}`)
    .join(", ");
  const retried = t.retried ? `, retried ${t.retried} (${reasons})` : "";
  return `  ms p50/p90 (${t.jobs} jobs): active ${formatNumber(t.active_ms_p50)}/${formatNumber(t.active_ms_p90)}${call}${retried}`;
}

/** The --gc-samples figures of a round (diagnostic: forced full GCs before each sample). */
function gcLine(result: IoRoundResult): string {
  const gc = result.gc;
  if (!gc) return "";
  return (
    `\n    [diagnostic, after forced GC, ${gc.samples} samples] heap ${formatNumber(gc.idle_heap_mib)} MiB idle ` +
    `(fresh ${formatNumber(gc.fresh_heap_mib)}) → ${formatNumber(gc.steady_heap_mib)} MiB = ` +
    `${formatNumber(gc.heap_kib_per_in_flight_job)} KiB heap/in-flight job (${formatNumber(gc.heap_kib_per_in_flight_job_from_fresh)} from fresh), ` +
    `heap total ${formatNumber(gc.steady_heap_total_mib)} MiB, ` +
    `rss ${formatNumber(gc.steady_rss_mib)} MiB = ${formatNumber(gc.rss_kib_per_in_flight_job)} KiB/in-flight job, ` +
    `external ${formatNumber(gc.external_kib_per_in_flight_job)} KiB/job` +
    `${gc.heap_snapshots ? `; snapshots ${gc.heap_snapshots.join(", ")}` : ""}`
  );
}

function summarize(results: IoRoundResult[], concurrency: number) {
  const of = (side: IoSide) =>
    results.filter((result) => result.side === side && result.concurrency === concurrency && result.ok);
  const raw = of("raw");
  const cascade = of("cascade");
  const ideal = (cascade[0] ?? raw[0])?.ideal_jobs_per_second ?? Number.NaN;
  const side = (rounds: IoRoundResult[]) => ({
    rounds: rounds.length,
    jobs_per_second: median(rounds.map((round) => round.jobs_per_second)),
    range: rounds.length ? spread(rounds.map((round) => round.jobs_per_second)) : null,
    rss_kib_per_in_flight_job: median(rounds.map((round) => round.rss_kib_per_in_flight_job)),
    rss_kib_per_in_flight_job_from_fresh: median(
      rounds.map((round) => round.rss_kib_per_in_flight_job_from_fresh),
    ),
    in_flight: median(rounds.map((round) => round.in_flight)),
    worker_cpu_us_per_job: median(rounds.map((round) => round.worker_cpu_us_per_job)),
    redis_cpu_us_per_job: median(
      rounds.flatMap((round) => (round.redis ? [round.redis.cpu_us_per_job] : [])),
    ),
    gc_heap_kib_per_in_flight_job: median(
      rounds.flatMap((round) => (round.gc ? [round.gc.heap_kib_per_in_flight_job] : [])),
    ),
    gc_rss_kib_per_in_flight_job: median(
      rounds.flatMap((round) => (round.gc ? [round.gc.rss_kib_per_in_flight_job] : [])),
    ),
  });
  const rawSide = side(raw);
  const cascadeSide = side(cascade);
  // Per pair (same round number): the ratio of two rounds run one after the other.
  const pairRatios = cascade.flatMap((round) => {
    const partner = raw.find((candidate) => candidate.round === round.round);
    return partner ? [round.jobs_per_second / partner.jobs_per_second] : [];
  });
  return {
    concurrency,
    ideal_jobs_per_second: ideal,
    raw: rawSide,
    cascade: cascadeSide,
    ratios: {
      cascade_to_ideal: cascadeSide.jobs_per_second / ideal,
      cascade_to_raw: cascadeSide.jobs_per_second / rawSide.jobs_per_second,
      cascade_to_raw_per_pair: pairRatios,
      raw_to_ideal: rawSide.jobs_per_second / ideal,
      // From the RSS right after start-up: the idle RSS between rounds still holds the garbage of
      // the round before (V8 shrinks its heap lazily), which can exceed the steady state.
      rss_cascade_to_raw:
        cascadeSide.rss_kib_per_in_flight_job_from_fresh / rawSide.rss_kib_per_in_flight_job_from_fresh,
      rss_cascade_to_target: cascadeSide.rss_kib_per_in_flight_job_from_fresh / TARGET_RSS_KIB,
    },
  };
}

function verdict(pass: boolean): string {
  return pass ? "PASS" : "BELOW";
}

async function main(): Promise<number> {
  const options = parseIoOptions(process.argv.slice(2));
  if (options.build) buildPackages();
  const modules = await loadModules();
  const { shared } = modules;
  const redis = await startBenchRedis();
  const statsRedis = redis.spawned ? shared.createRedis(redis.url) : undefined;
  const directory = mkdtempSync(join(tmpdir(), "cascade-bench-io-"));
  const upstream = spawnNode(
    "slow upstream",
    [
      "--import",
      "tsx",
      join(repoRoot, "bench", "gateway", "fake-upstream.ts"),
      "0",
      String(options.latencyMs),
    ],
    { cwd: repoRoot },
  );
  try {
    const port = Number((await waitForLine(upstream, /listening (\d+)/, 20_000))[1]);
    const configPath = join(directory, "cascade.json");
    const configFile = ioConfig(port);
    writeFileSync(configPath, JSON.stringify(configFile, null, 2));
    const upstreamKey = `sk-bench-${randomBytes(8).toString("hex")}`;
    const config = shared.loadConfig(
      { CASCADE_REDIS_PREFIX: "bench", BENCH_UPSTREAM_KEY: upstreamKey },
      { raw: configFile },
    );
    const machine = machineInfo();
    const runId = Date.now().toString(36);
    const sides: IoSide[] = options.only === "both" ? ["raw", "cascade"] : [options.only];
    console.log(
      `io bench: upstream answers after ${options.latencyMs} ms; concurrency ${options.concurrencies.join(", ")}; ` +
        `${options.rounds} round(s) of ${sides.join(" + ")} each; ramp ${options.warmSeconds} s, window ${options.measureSeconds} s; ` +
        `Cascade LOG_LEVEL=${options.logLevel} to /dev/null`,
    );
    console.log(
      `machine: ${machine.cpus} cpus (${machine.cpu_model}), node ${machine.node}, load average ${(
        await import("node:os")
      )
        .loadavg()
        .map((value) => value.toFixed(2))
        .join(" ")}`,
    );
    const context = {
      modules,
      options,
      redisUrl: redis.url,
      statsRedis,
      config,
      configPath,
      upstreamKey,
      upstream: {
        pid: upstream.process.pid as number,
        async calls() {
          const response = await fetch(`http://127.0.0.1:${port}/stats`);
          const counts = (await response.json()) as { completions: number };
          return counts.completions;
        },
      },
      runId,
    };
    const results: IoRoundResult[] = [];
    const warmups: IoRoundResult[] = [];
    for (const concurrency of options.concurrencies) {
      const sessions: IoSession[] = [];
      try {
        for (const side of sides) sessions.push(await startIoSession(context, side, concurrency));
        // Round 0 of each side: unmeasured, gets the code JIT-compiled and the connections open.
        for (let round = 0; round <= options.rounds; round += 1) {
          for (const session of sessions) {
            try {
              const result = await runIoRound(context, session, round);
              (round === 0 ? warmups : results).push(result);
              console.log(`${roundLine(result)}${round === 0 ? "  (warm-up, not counted)" : ""}`);
            } catch (error) {
              console.log(
                `c=${concurrency} round ${round}  ${session.side}  FAILED: ${(error as Error).message}`,
              );
            }
          }
        }
      } finally {
        for (const session of sessions) await session.close();
      }
    }
    console.log("");
    const summaries = options.concurrencies.map((concurrency) => summarize(results, concurrency));
    for (const summary of summaries) {
      const { ratios } = summary;
      const range = (side: typeof summary.raw) =>
        side.range ? ` (${formatNumber(side.range.min)}..${formatNumber(side.range.max)})` : "";
      console.log(
        `concurrency ${summary.concurrency}: ideal ${formatNumber(summary.ideal_jobs_per_second)} jobs/s`,
      );
      console.log(
        `  raw BullMQ: median ${formatNumber(summary.raw.jobs_per_second)} jobs/s${range(summary.raw)}, ` +
          `${formatNumber(summary.raw.rss_kib_per_in_flight_job_from_fresh)} KiB/in-flight job from fresh (${formatNumber(summary.raw.rss_kib_per_in_flight_job)} from idle before the round), worker cpu ${formatNumber(summary.raw.worker_cpu_us_per_job)} µs/job`,
      );
      console.log(
        `  Cascade:    median ${formatNumber(summary.cascade.jobs_per_second)} jobs/s${range(summary.cascade)}, ` +
          `${formatNumber(summary.cascade.rss_kib_per_in_flight_job_from_fresh)} KiB/in-flight job from fresh (${formatNumber(summary.cascade.rss_kib_per_in_flight_job)} from idle before the round; in flight ${summary.cascade.in_flight}), ` +
          `worker cpu ${formatNumber(summary.cascade.worker_cpu_us_per_job)} µs/job, redis cpu ${formatNumber(summary.cascade.redis_cpu_us_per_job)} µs/job`,
      );
      console.log(
        `  ratio cascade/ideal ${formatNumber(ratios.cascade_to_ideal)}: ${verdict(ratios.cascade_to_ideal >= TARGET_THROUGHPUT_RATIO)} (target ≥ ${TARGET_THROUGHPUT_RATIO})`,
      );
      if (options.rawBurnUs > 0) {
        console.log(
          `  note: raw BullMQ spun ${options.rawBurnUs} µs of CPU per job (--raw-burn-us): cascade/raw compares against a slowed baseline`,
        );
      }
      console.log(
        `  ratio cascade/raw ${formatNumber(ratios.cascade_to_raw)} (per pair ${ratios.cascade_to_raw_per_pair.map((value) => formatNumber(value)).join(", ")}): ` +
          `${verdict(ratios.cascade_to_raw >= TARGET_THROUGHPUT_RATIO)} (target ≥ ${TARGET_THROUGHPUT_RATIO}); raw/ideal ${formatNumber(ratios.raw_to_ideal)}`,
      );
      if (options.gcSamples) {
        console.log(
          `  [diagnostic, after forced GC] retained per in-flight job: Cascade heap ${formatNumber(summary.cascade.gc_heap_kib_per_in_flight_job)} KiB, ` +
            `rss ${formatNumber(summary.cascade.gc_rss_kib_per_in_flight_job)} KiB; raw BullMQ heap ${formatNumber(summary.raw.gc_heap_kib_per_in_flight_job)} KiB, ` +
            `rss ${formatNumber(summary.raw.gc_rss_kib_per_in_flight_job)} KiB (jobs/s of such a run are slowed by the GCs)`,
        );
      }
      console.log(
        `  RSS per in-flight job: cascade/raw ${formatNumber(ratios.rss_cascade_to_raw)}, cascade/target ${formatNumber(ratios.rss_cascade_to_target)} ` +
          `(${formatNumber(summary.cascade.rss_kib_per_in_flight_job_from_fresh)} KiB vs ${TARGET_RSS_KIB} KiB): ${verdict(ratios.rss_cascade_to_target <= 1)}`,
      );
    }
    const path = writeResults("io", {
      bench: "io",
      finished_at: new Date().toISOString(),
      options,
      machine,
      versions: modules.versions,
      redis: { spawned: redis.spawned, url: shared.redactRedisUrl(redis.url) },
      warmup_rounds: warmups,
      rounds: results,
      summaries,
    });
    console.log(`results: ${path}`);
    return results.every((result) => result.ok) &&
      results.length === options.concurrencies.length * options.rounds * sides.length
      ? 0
      : 1;
  } finally {
    await upstream.stop();
    rmSync(directory, { recursive: true, force: true });
    await statsRedis?.quit().catch(() => statsRedis.disconnect());
    await redis.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`io bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
