/**
 * `pnpm bench:gateway`: what a gateway in front of an OpenAI-compatible upstream costs. One run,
 * one machine: a zero-latency fake upstream (its own process), and in interleaved rounds (target
 * order rotated) the same requests sent to it directly, through Cascade's API (breakers, buckets
 * and budgets on, never denying) and through the Portkey open-source gateway, non-streaming and
 * streaming. Each target gets an unmeasured warm-up, an autocannon throughput run (closed loop, 50
 * connections) and a fixed-rate run (open loop, 500 req/s). Prints req/s, p50 and p99 of each,
 * the ratios to direct and cascade ÷ portkey, the latency added over direct, and the issue's
 * targets; writes bench/results/gateway-<timestamp>.json. Asserts nothing: exit 0 when it ran.
 * See docs/benchmarks.md.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, renameSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { repoRoot } from "../support/modules.js";
import { summarizeProfile } from "../support/profile-summary.js";
import { type BenchRedis, startBenchRedis } from "../support/redis-server.js";
import { machineInfo, writeResults } from "../support/results.js";
import { pacedRun, type RunResult, throughputRun } from "./load.js";
import { type GatewayBenchOptions, type Mode, parseOptions, type TargetName } from "./options.js";
import { layerLines, layerSummary } from "./profile-layers.js";
import { type ModeSummary, runLine, summarizeMode, summaryLines } from "./report.js";
import {
  buildApi,
  type CheckResult,
  cascadeConfig,
  checkTarget,
  directTarget,
  type Fake,
  PORTKEY_ENTRY,
  startCascade,
  startFake,
  startPortkey,
  type Target,
} from "./targets.js";

function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

function gitDescription(): string {
  const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "packages"], {
    cwd: repoRoot,
    encoding: "utf8",
  });
  return `${head.stdout.trim() || "?"}${dirty.stdout.trim() ? " + uncommitted changes in packages/" : ""}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForFile(path: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(path)) return true;
    await sleep(100);
  }
  return false;
}

/** One target, one mode, one round: warm-up, throughput, fixed rate. */
async function measure(
  target: Target,
  fake: Fake,
  mode: Mode,
  round: number,
  options: GatewayBenchOptions,
): Promise<RunResult[]> {
  if (options.warmupSeconds > 0) {
    await throughputRun({
      target,
      mode,
      round,
      seconds: options.warmupSeconds,
      connections: options.connections,
    });
  }
  const results: RunResult[] = [];
  const upstreamCalls = async () => {
    const counts = await fake.counts();
    return counts.completions + counts.streams;
  };
  let before = await upstreamCalls();
  const throughput = await throughputRun({
    target,
    mode,
    round,
    seconds: options.seconds,
    connections: options.connections,
  });
  throughput.upstreamCalls = (await upstreamCalls()) - before;
  results.push(throughput);
  console.log(runLine(throughput));
  if (options.rate > 0) {
    await sleep(200);
    before = await upstreamCalls();
    const paced = await pacedRun({
      target,
      mode,
      round,
      rate: options.rate,
      seconds: options.seconds,
      warmupRequests: Math.ceil(options.rate / 2),
    });
    paced.upstreamCalls = (await upstreamCalls()) - before;
    results.push(paced);
    console.log(runLine(paced));
  }
  await sleep(200);
  return results;
}

interface ProfileResult {
  target: TargetName;
  mode: Mode;
  path: string;
  rps: number;
  requests: number;
  /** Sampled main-thread time charged to each layer (profile-layers.ts), µs. */
  layers: [string, number][];
  /** The functions with the most self time, µs. */
  topFunctions: [string, number][];
}

/** One extra throughput run per mode of Cascade and Portkey with their CPU profiler on. */
async function profileRuns(
  targets: Target[],
  modes: Mode[],
  available: (target: TargetName, mode: Mode) => boolean,
  options: GatewayBenchOptions,
  directory: string,
): Promise<ProfileResult[]> {
  const profiles: ProfileResult[] = [];
  for (const target of targets) {
    if (!target.child) continue;
    let count = 0;
    for (const mode of modes) {
      if (!available(target.name, mode)) continue;
      await throughputRun({
        target,
        mode,
        round: 0,
        seconds: Math.max(1, options.warmupSeconds),
        connections: options.connections,
      });
      target.child.process.kill("SIGUSR2");
      await sleep(100);
      const run = await throughputRun({
        target,
        mode,
        round: 0,
        seconds: options.seconds,
        connections: options.connections,
      });
      target.child.process.kill("SIGUSR2");
      count += 1;
      const written = join(directory, `${target.name}-${count}.cpuprofile`);
      if (!(await waitForFile(written, 30_000))) {
        console.log(`  profile of ${target.name} ${mode}: not written (${written})`);
        continue;
      }
      const path = join(directory, `${target.name}-${mode}.cpuprofile`);
      renameSync(written, path);
      const profile = JSON.parse(readFileSync(path, "utf8"));
      // Requests in flight when the profile stops were partly served: count them as answered.
      const requests = run.ok + run.non2xx + options.connections;
      const layers = layerSummary(profile).layers;
      const topFunctions = summarizeProfile(profile).selfFunctions.slice(0, 25);
      profiles.push({ target: target.name, mode, path, rps: run.rps, requests, layers, topFunctions });
      console.log(`  ${target.name} ${mode}: ${formatRps(run.rps)} req/s under the profiler; ${path}`);
      for (const line of layerLines(profile, requests, 16)) console.log(`    ${line}`);
    }
  }
  return profiles;
}

const formatRps = (value: number) => Math.round(value).toString();

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const machine = machineInfo();
  const wantCascade = options.targets.includes("cascade");
  const profileDirectory = options.profileDirectory ? resolve(options.profileDirectory) : undefined;
  const profile = profileDirectory ? { directory: profileDirectory } : undefined;
  /** target → mode → why it is left out. */
  const unavailable: Record<Mode, Record<string, string>> = { json: {}, stream: {} };
  const leaveOut = (target: TargetName, why: string, modes: readonly Mode[] = options.modes) => {
    for (const mode of modes) unavailable[mode][target] = why;
  };

  let buildNote: string | undefined;
  if (wantCascade && options.build) {
    buildNote = buildApi();
    if (buildNote) console.log(`note: ${buildNote}; measuring packages/api/dist as it is`);
  }

  const versions = {
    node: process.version,
    autocannon: packageVersion(join(repoRoot, "node_modules", "autocannon", "package.json")),
    portkey: packageVersion(join(PORTKEY_ENTRY, "..", "..", "package.json")),
    cascade: gitDescription(),
  };
  console.log(
    `gateway bench: ${options.rounds} round(s) of ${options.targets.join(", ")} (order rotated), ${options.modes.join(" + ")}; ` +
      `per target and round: ${options.warmupSeconds} s warm-up, ${options.seconds} s at ${options.connections} connections` +
      `${options.rate ? `, ${options.seconds} s at a fixed ${options.rate} req/s` : ""}`,
  );
  console.log(
    `machine: ${machine.cpus} cpus (${machine.cpu_model}), node ${versions.node}, autocannon ${versions.autocannon}, ` +
      `@portkey-ai/gateway ${versions.portkey}, cascade ${versions.cascade}`,
  );
  const [load] = os.loadavg();
  if ((load ?? 0) > 0.5) {
    console.log(
      `note: load average ${load?.toFixed(2)} before starting: other work competes for the ${machine.cpus} cpus with the load generator, the gateways and the fake`,
    );
  }

  let redis: BenchRedis | undefined;
  let fake: Fake | undefined;
  const targets: Target[] = [];
  let cascadeCleanup: (() => void) | undefined;
  try {
    fake = await startFake();
    targets.push(directTarget(fake));
    if (options.targets.includes("portkey")) {
      try {
        targets.push(await startPortkey(fake, profile));
      } catch (error) {
        leaveOut("portkey", `did not start: ${(error as Error).message}`);
      }
    }
    if (wantCascade) {
      try {
        redis = await startBenchRedis();
        const cascade = await startCascade(fake, {
          redisUrl: redis.url,
          logLevel: options.logLevel,
          profile,
        });
        cascadeCleanup = cascade.cleanup;
        targets.push(cascade);
      } catch (error) {
        leaveOut("cascade", `did not start: ${(error as Error).message}`);
      }
    }
    const selected = targets.filter((target) => options.targets.includes(target.name));
    console.log(
      `fake upstream on 127.0.0.1:${fake.port}${redis ? `; redis ${redis.spawned ? "private, spawned" : "from REDIS_URL"}` : ""}; ` +
        `Cascade LOG_LEVEL=${options.logLevel} to /dev/null`,
    );

    // The check before measuring: each target must answer 200 with the fake's content.
    const checks: Record<string, CheckResult> = {};
    for (const mode of options.modes) {
      for (const target of selected) {
        const check = await checkTarget(target, mode);
        checks[`${target.name} ${mode}`] = check;
        const extra = Object.entries(check.headers)
          .filter(([name]) => name.startsWith("x-cascade-"))
          .map(([name, value]) => `${name}: ${value}`)
          .join(", ");
        console.log(
          `  check ${target.name.padEnd(8)} ${mode.padEnd(6)} ${check.ok ? "ok" : "FAILED"}: ${check.detail}${extra ? ` (${extra})` : ""}`,
        );
        if (!check.ok) leaveOut(target.name, check.detail, [mode]);
      }
    }
    const available = (target: TargetName, mode: Mode) => !unavailable[mode][target];

    const results: RunResult[] = [];
    for (let round = 1; round <= options.rounds; round += 1) {
      const shift = (round - 1) % selected.length;
      const order = [...selected.slice(shift), ...selected.slice(0, shift)];
      console.log(`round ${round}: ${order.map((target) => target.name).join(", ")}`);
      for (const mode of options.modes) {
        for (const target of order) {
          if (!available(target.name, mode)) continue;
          if (target.child?.exited()) {
            leaveOut(target.name, `its process exited during the run: ${target.child.tail()}`);
            continue;
          }
          results.push(...(await measure(target, fake, mode, round, options)));
        }
      }
    }

    let profiles: ProfileResult[] = [];
    if (profileDirectory) {
      console.log(
        `\nprofiles (one extra throughput run per mode, not counted above) in ${profileDirectory}:`,
      );
      profiles = await profileRuns(selected, options.modes, available, options, profileDirectory);
    }

    console.log("");
    const summaries: ModeSummary[] = options.modes.map((mode) =>
      summarizeMode(mode, options.targets, results, unavailable[mode]),
    );
    for (const summary of summaries) {
      for (const line of summaryLines(summary, options)) console.log(line);
      console.log("");
    }
    const flagged = results.filter((result) => result.flag);
    if (flagged.length) {
      console.log(`${flagged.length} run(s) flagged and left out of the medians:`);
      for (const result of flagged) console.log(runLine(result));
    }
    const path = writeResults("gateway", {
      bench: "gateway",
      finished_at: new Date().toISOString(),
      options,
      machine,
      versions,
      build: buildNote ?? (wantCascade && options.build ? "tsc -b packages/api ok" : "not built"),
      cascade_config: cascadeConfig(fake.port),
      checks,
      unavailable,
      runs: results,
      summary: summaries,
      profiles,
    });
    console.log(`results: ${path}`);
    return 0;
  } finally {
    for (const target of targets) await target.child?.stop();
    cascadeCleanup?.();
    await fake?.child.stop();
    await redis?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`gateway bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
