/**
 * `pnpm bench:enqueue`: the API's enqueue path. autocannon (50 connections, closed loop) sends
 * `POST /v1/jobs` to Cascade's API process (`node packages/api/dist/main.js`: auth, zod
 * validation, chain resolution, the fair-share tag script, `queue.add`) and, in interleaved rounds
 * on the same Redis, to a bare Fastify + `queue.add` endpoint (bench/enqueue/bare-server.ts).
 * Prints Cascade's req/s as a ratio of the bare one's (target ≥ 0.85) and its p99 latency as a
 * ratio (target ≤ 1.5), both of the medians over the rounds; also API CPU and Redis CPU and
 * commands per request. No worker runs: the queue grows during a round and is deleted after it.
 * Writes bench/results/enqueue-<timestamp>.json. See docs/benchmarks.md.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { type LatencySummary, summarizeLatencies } from "../gateway/load.js";
import { type Child, spawnNode, waitForHttp, waitForLine } from "../gateway/processes.js";
import { cpuSeconds } from "../io/proc-stats.js";
import { loadModules, repoRoot } from "../support/modules.js";
import { startBenchRedis } from "../support/redis-server.js";
import { deleteKeysWithPrefix, redisDelta, snapshotRedis } from "../support/redis-stats.js";
import { machineInfo, writeResults } from "../support/results.js";
import { formatNumber, median } from "../support/stats.js";

const TARGET_RPS_RATIO = 0.85;
const TARGET_P99_RATIO = 1.5;

const USAGE = `pnpm bench:enqueue [options]
  --connections <n>   autocannon connections (default 50)
  --seconds <n>       length of each measured round (default 10)
  --warmup-s <n>      unmeasured run per side first (default 3)
  --rounds <n>        interleaved bare/cascade pairs (default 3)
  --log-level <lvl>   the API's LOG_LEVEL (default info, to /dev/null)
  --ablation          also run the bare server with the fair-share tags script first (bare+fair),
                      and that with auto-pipelining on its connection (bare+fair+pipelined)
  --profile <dir>     CPU profiles of the API and of each bare server over the last round
                      (<dir>/enqueue-api-1.cpuprofile, <dir>/enqueue-bare-1.cpuprofile, …)
  --no-build          measure packages/*/dist as it is (else tsc -b packages/api first)`;

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "50" },
    seconds: { type: "string", default: "10" },
    "warmup-s": { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    "log-level": { type: "string", default: "info" },
    profile: { type: "string" },
    ablation: { type: "boolean" },
    "no-build": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const options = {
  connections: Number(values.connections),
  seconds: Number(values.seconds),
  warmupSeconds: Number(values["warmup-s"]),
  rounds: Number(values.rounds),
  logLevel: values["log-level"] as string,
  profileDirectory: values.profile,
  ablation: values.ablation === true,
  build: !values["no-build"],
};

/** A typical small job: a two-message chat request, no model named (route `default`). */
export const ENQUEUE_BODY = JSON.stringify({
  request: {
    messages: [
      { role: "system", content: "You are a concise assistant for a support team. Answer in two sentences." },
      {
        role: "user",
        content:
          "A customer writes: my order arrived with a cracked screen protector and the box was dented. " +
          "They ask whether they should send it back or wait for a replacement part. What do we tell them?",
      },
    ],
    max_tokens: 64,
  },
});

function apiConfig() {
  return {
    providers: {
      "bench-sim": {
        type: "simulated",
        simulate: { latency_ms: 0, error_rate: 0, rate_limit_rate: 0, hang_rate: 0 },
      },
    },
    models: {
      "bench-model": {
        provider: "bench-sim",
        name: "sim-bench-1",
        price: { input_per_mtok: 0.15, output_per_mtok: 0.6 },
        context_window: 128000,
        capabilities: ["tools", "json"],
      },
    },
    routes: { default: { chain: [{ model: "bench-model", timeout_ms: 30000 }] } },
    tenants: { bench: { api_keys_env: "BENCH_API_KEYS" } },
  };
}

/** "bare", "cascade", and with --ablation "bare+fair" and "bare+fair+pipelined". */
const sidePrefix = (name: string) => name.replace(/[^a-z]+/g, "-");

type SideName = string;

const BARE_VARIANTS: Array<{ name: SideName; env: Record<string, string> }> = [
  { name: "bare", env: {} },
  ...(options.ablation
    ? [
        { name: "bare+fair", env: { ENQUEUE_FAIR: "1" } },
        { name: "bare+fair+pipelined", env: { ENQUEUE_FAIR: "1", ENQUEUE_AUTOPIPELINE: "1" } },
      ]
    : []),
];

interface Side {
  name: SideName;
  url: string;
  headers: Record<string, string>;
  child: Child;
  /** Where its keys live, deleted after every run. */
  prefix: string;
}

interface RoundResult {
  side: SideName;
  round: number;
  seconds: number;
  ok: number;
  rps: number;
  latency: LatencySummary;
  non2xx: number;
  errors: number;
  process_cpu_us_per_request: number;
  redis_cpu_us_per_request: number | null;
  redis_commands_per_request: number | null;
  redis_by_command_per_request: Record<string, number> | null;
  load_average_1m: number;
  flag?: string;
}

function load(
  side: Side,
  seconds: number,
): Promise<{
  ok: number;
  seconds: number;
  latencies: number[];
  codes: Record<string, number>;
  errors: number;
}> {
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  return new Promise((resolve) => {
    const instance = autocannon(
      {
        url: side.url,
        method: "POST",
        headers: side.headers,
        body: ENQUEUE_BODY,
        connections: options.connections,
        duration: seconds,
        timeout: 10,
      },
      (_error: unknown, result: autocannon.Result) => {
        resolve({
          ok: latencies.length,
          seconds: result?.duration && result.duration > 0 ? result.duration : seconds,
          latencies,
          codes,
          errors: result?.errors ?? 0,
        });
      },
    );
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      codes[statusCode] = (codes[statusCode] ?? 0) + 1;
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}

async function main(): Promise<number> {
  if (options.build) {
    const { spawnSync } = await import("node:child_process");
    const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
    const built = spawnSync(process.execPath, [tsc, "-b", join(repoRoot, "packages", "api")], {
      stdio: "inherit",
    });
    if (built.status !== 0) throw new Error("tsc -b packages/api failed");
  }
  const modules = await loadModules();
  const { shared } = modules;
  const redis = await startBenchRedis();
  const statsRedis = redis.spawned ? shared.createRedis(redis.url) : undefined;
  const cleaner = shared.createRedis(redis.url);
  const directory = mkdtempSync(join(tmpdir(), "cascade-bench-enqueue-"));
  const runId = Date.now().toString(36);
  const profilePreload = join(repoRoot, "bench", "gateway", "profile-preload.mjs");
  const sides: Side[] = [];
  try {
    for (const variant of BARE_VARIANTS) {
      const prefix = `{bench-enq-${sidePrefix(variant.name)}-${runId}}`;
      const child = spawnNode(
        variant.name,
        [
          ...(options.profileDirectory ? ["--import", profilePreload] : []),
          "--import",
          "tsx",
          join(repoRoot, "bench", "enqueue", "bare-server.ts"),
        ],
        {
          cwd: repoRoot,
          env: {
            ...process.env,
            REDIS_URL: redis.url,
            ENQUEUE_PREFIX: prefix,
            ...variant.env,
            ...(options.profileDirectory
              ? {
                  BENCH_PROFILE_DIR: options.profileDirectory,
                  BENCH_PROFILE_PREFIX: `enqueue-${sidePrefix(variant.name)}`,
                }
              : {}),
          },
        },
      );
      const barePort = Number((await waitForLine(child, /listening (\d+)/, 30_000))[1]);
      sides.push({
        name: variant.name,
        url: `http://127.0.0.1:${barePort}/v1/jobs`,
        headers: { "content-type": "application/json" },
        child,
        prefix,
      });
    }

    const configPath = join(directory, "cascade.json");
    writeFileSync(configPath, JSON.stringify(apiConfig(), null, 2));
    const apiKey = `cbk_${randomBytes(16).toString("hex")}`;
    const port = await (await import("../support/redis-server.js")).findFreePort();
    const cascadePrefix = `bench-enq-${runId}`;
    const api = spawnNode(
      "cascade api",
      [
        ...(options.profileDirectory ? ["--import", profilePreload] : []),
        join(repoRoot, "packages", "api", "dist", "main.js"),
      ],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          REDIS_URL: redis.url,
          HOST: "127.0.0.1",
          PORT: String(port),
          LOG_LEVEL: options.logLevel,
          CASCADE_CONFIG: configPath,
          CASCADE_REDIS_PREFIX: cascadePrefix,
          BENCH_API_KEYS: apiKey,
          ...(options.profileDirectory
            ? { BENCH_PROFILE_DIR: options.profileDirectory, BENCH_PROFILE_PREFIX: "enqueue-api" }
            : {}),
        },
        quiet: true,
      },
    );
    await waitForHttp(api, `http://127.0.0.1:${port}/healthz`, 30_000);
    sides.push({
      name: "cascade",
      url: `http://127.0.0.1:${port}/v1/jobs`,
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      child: api,
      prefix: shared.createKeys(cascadePrefix).bullPrefix,
    });

    // Both must answer 202 before anything is measured.
    for (const side of sides) {
      const response = await fetch(side.url, { method: "POST", headers: side.headers, body: ENQUEUE_BODY });
      const text = await response.text();
      if (response.status !== 202)
        throw new Error(`${side.name} answered ${response.status}: ${text.slice(0, 300)}`);
      console.log(`check ${side.name}: 202 ${text.slice(0, 120)}…`);
    }
    const machine = machineInfo();
    console.log(
      `enqueue bench: POST /v1/jobs, ${options.connections} connections, ${options.rounds} round(s) of ${options.seconds} s per side, interleaved; ` +
        `API LOG_LEVEL=${options.logLevel}; machine ${machine.cpus} cpus, node ${machine.node}, load average ${os
          .loadavg()
          .map((value) => value.toFixed(2))
          .join(" ")}`,
    );

    const results: RoundResult[] = [];
    for (let round = 0; round <= options.rounds; round += 1) {
      for (const side of sides) {
        const seconds = round === 0 ? options.warmupSeconds : options.seconds;
        const profiling = options.profileDirectory !== undefined && round === options.rounds;
        const loadAverage = os.loadavg()[0] ?? 0;
        const before = statsRedis ? await snapshotRedis(statsRedis) : undefined;
        const cpuBefore = cpuSeconds(side.child.process.pid as number);
        if (profiling) side.child.process.kill("SIGUSR2");
        const run = await load(side, seconds);
        if (profiling) side.child.process.kill("SIGUSR2");
        const cpu = cpuSeconds(side.child.process.pid as number) - cpuBefore;
        const after = statsRedis ? await snapshotRedis(statsRedis) : undefined;
        await deleteKeysWithPrefix(cleaner, side.prefix);
        if (round === 0) {
          console.log(`warm-up ${side.name}: ${formatNumber(run.ok / run.seconds)} req/s (not counted)`);
          continue;
        }
        const delta = before && after ? redisDelta(before, after) : undefined;
        let non2xx = 0;
        for (const [code, count] of Object.entries(run.codes)) if (!code.startsWith("2")) non2xx += count;
        const perRequest = (value: number) => value / Math.max(1, run.ok);
        const result: RoundResult = {
          side: side.name,
          round,
          seconds: run.seconds,
          ok: run.ok,
          rps: run.ok / run.seconds,
          latency: summarizeLatencies(run.latencies),
          non2xx,
          errors: run.errors,
          process_cpu_us_per_request: perRequest(cpu * 1e6),
          redis_cpu_us_per_request: delta ? perRequest(delta.cpuSeconds * 1e6) : null,
          redis_commands_per_request: delta ? perRequest(delta.commands) : null,
          redis_by_command_per_request: delta
            ? Object.fromEntries(
                Object.entries(delta.byCommand).map(([name, calls]) => [
                  name,
                  Number(perRequest(calls).toFixed(2)),
                ]),
              )
            : null,
          load_average_1m: Number(loadAverage.toFixed(2)),
          ...(non2xx || run.errors ? { flag: `${non2xx} non-2xx, ${run.errors} errors` } : {}),
        };
        results.push(result);
        console.log(
          `round ${round}  ${side.name.padEnd(19)}  ${formatNumber(result.rps)} req/s  p50 ${formatNumber(result.latency.p50)} ms  p99 ${formatNumber(result.latency.p99)} ms  ` +
            `process cpu ${formatNumber(result.process_cpu_us_per_request)} µs/req` +
            (result.redis_cpu_us_per_request !== null
              ? `  redis cpu ${formatNumber(result.redis_cpu_us_per_request)} µs/req, cmds/req ${formatNumber(result.redis_commands_per_request ?? Number.NaN)}`
              : "") +
            `${result.flag ? `  FLAGGED: ${result.flag}` : ""}`,
        );
      }
    }
    const of = (name: SideName) => results.filter((result) => result.side === name && !result.flag);
    const summary = (rounds: RoundResult[]) => ({
      rounds: rounds.length,
      rps: median(rounds.map((round) => round.rps)),
      p50: median(rounds.map((round) => round.latency.p50)),
      p99: median(rounds.map((round) => round.latency.p99)),
      process_cpu_us_per_request: median(rounds.map((round) => round.process_cpu_us_per_request)),
      redis_cpu_us_per_request: median(
        rounds.flatMap((round) =>
          round.redis_cpu_us_per_request === null ? [] : [round.redis_cpu_us_per_request],
        ),
      ),
      redis_commands_per_request: median(
        rounds.flatMap((round) =>
          round.redis_commands_per_request === null ? [] : [round.redis_commands_per_request],
        ),
      ),
    });
    const bareSummary = summary(of("bare"));
    const cascadeSummary = summary(of("cascade"));
    const pairs = of("cascade").flatMap((round) => {
      const partner = of("bare").find((candidate) => candidate.round === round.round);
      return partner ? [{ rps: round.rps / partner.rps, p99: round.latency.p99 / partner.latency.p99 }] : [];
    });
    const rpsRatio = cascadeSummary.rps / bareSummary.rps;
    const p99Ratio = cascadeSummary.p99 / bareSummary.p99;
    console.log("");
    const variantSummaries = Object.fromEntries(
      sides.map((side) => [side.name, summary(of(side.name))] as const),
    );
    for (const [name, side] of Object.entries(variantSummaries)) {
      const versusBare =
        name === "bare"
          ? ""
          : `  (÷ bare: req/s ${formatNumber(side.rps / bareSummary.rps)}, p99 ${formatNumber(side.p99 / bareSummary.p99)}, ` +
            `cpu ${formatNumber((side.process_cpu_us_per_request + side.redis_cpu_us_per_request) / (bareSummary.process_cpu_us_per_request + bareSummary.redis_cpu_us_per_request))}×)`;
      console.log(
        `${name}: median ${formatNumber(side.rps)} req/s, p50 ${formatNumber(side.p50)} ms, p99 ${formatNumber(side.p99)} ms; ` +
          `process cpu ${formatNumber(side.process_cpu_us_per_request)} µs/req, redis cpu ${formatNumber(side.redis_cpu_us_per_request)} µs/req, cmds/req ${formatNumber(side.redis_commands_per_request)}${versusBare}`,
      );
    }
    console.log(
      `ratio cascade/bare req/s ${formatNumber(rpsRatio)} (per pair ${pairs.map((pair) => formatNumber(pair.rps)).join(", ")}): ` +
        `${rpsRatio >= TARGET_RPS_RATIO ? "PASS" : "BELOW"} (target ≥ ${TARGET_RPS_RATIO})`,
    );
    console.log(
      `ratio cascade/bare p99 ${formatNumber(p99Ratio)} (per pair ${pairs.map((pair) => formatNumber(pair.p99)).join(", ")}): ` +
        `${p99Ratio <= TARGET_P99_RATIO ? "PASS" : "ABOVE"} (target ≤ ${TARGET_P99_RATIO})`,
    );
    // CPU per request of the server process plus Redis: on a shared 2-core machine req/s follow it,
    // and it moves far less from round to round than req/s do.
    const cpuRatio =
      (bareSummary.process_cpu_us_per_request + bareSummary.redis_cpu_us_per_request) /
      (cascadeSummary.process_cpu_us_per_request + cascadeSummary.redis_cpu_us_per_request);
    console.log(
      `cpu ratio (server + Redis µs/req, bare/cascade): ${formatNumber(cpuRatio)} ` +
        `(${formatNumber(bareSummary.process_cpu_us_per_request + bareSummary.redis_cpu_us_per_request)} vs ` +
        `${formatNumber(cascadeSummary.process_cpu_us_per_request + cascadeSummary.redis_cpu_us_per_request)})`,
    );
    const path = writeResults("enqueue", {
      bench: "enqueue",
      finished_at: new Date().toISOString(),
      options,
      machine,
      versions: modules.versions,
      rounds: results,
      summary: {
        sides: variantSummaries,
        bare: bareSummary,
        cascade: cascadeSummary,
        rps_ratio: rpsRatio,
        p99_ratio: p99Ratio,
        cpu_ratio: cpuRatio,
        pairs,
      },
    });
    console.log(`results: ${path}`);
    return results.every((result) => !result.flag) ? 0 : 1;
  } finally {
    for (const side of sides) await side.child.stop();
    rmSync(directory, { recursive: true, force: true });
    await cleaner.quit().catch(() => cleaner.disconnect());
    await statsRedis?.quit().catch(() => statsRedis.disconnect());
    await redis.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`enqueue bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
