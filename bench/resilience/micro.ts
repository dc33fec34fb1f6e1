/**
 * Where one hop's admission and settlement spend their time, call by call, outside the worker:
 *   - Node: Resilience.admit/settle against a stub client that answers at once (building the
 *     key list and the JSON spec), and against the real client (adds ioredis encoding, the
 *     socket and reply parsing); bytes sent per call.
 *   - Redis: CPU per admit.lua and settle.lua call (INFO cpu on a private Redis), and, for the
 *     full configuration, the same KEYS and ARGV sent to a script that returns at once and to one
 *     that only runs cjson.decode: what the script call and the JSON decoding cost by themselves.
 * Usage: node --import tsx bench/resilience/micro.ts [--calls 20000] [--in-flight 50] [--no-build]
 */
import { parseArgs } from "node:util";
import { buildPackages, loadModules } from "../support/modules.js";
import { commandTimesDelta, snapshotCommandTimes } from "../support/redis-commandstats.js";
import { startBenchRedis } from "../support/redis-server.js";
import { redisDelta, snapshotRedis } from "../support/redis-stats.js";
import { machineInfo, writeResults } from "../support/results.js";
import { formatNumber } from "../support/stats.js";
import {
  ABLATION_VARIANTS,
  BENCH_MODEL,
  BENCH_PROVIDER,
  BENCH_TENANT,
  BENCH_USERS,
  buildUserJobData,
  resilienceConfigFile,
} from "./workload.js";

type Modules = Awaited<ReturnType<typeof loadModules>>;
type ResilienceInstance = InstanceType<Modules["engine"]["Resilience"]>;
type HopRequest = Parameters<ResilienceInstance["admit"]>[0];
type Ticket = Extract<Awaited<ReturnType<ResilienceInstance["admit"]>>, { admitted: true }>["ticket"];

/** Runs `count` calls of `call`, `inFlight` at a time. */
async function inParallel(count: number, inFlight: number, call: (index: number) => Promise<unknown>) {
  let next = 0;
  const lane = async () => {
    while (next < count) await call(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
}

function stubClient() {
  const sent = { admitBytes: 0, settleBytes: 0, admitKeys: 0, settleKeys: 0 };
  const size = (args: unknown[]) =>
    args.reduce<number>((sum, arg) => sum + Buffer.byteLength(String(arg)), 0);
  const client = {
    defineCommand() {},
    async cascadeAdmit(numberOfKeys: number, ...args: string[]) {
      sent.admitBytes = size(args);
      sent.admitKeys = numberOfKeys;
      return [1, ""];
    },
    async cascadeSettle(numberOfKeys: number, ...args: string[]) {
      sent.settleBytes = size(args);
      sent.settleKeys = numberOfKeys;
      return [];
    },
    async publish() {
      return 0;
    },
  };
  return { client, sent };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: "string" },
      "in-flight": { type: "string" },
      "no-build": { type: "boolean" },
    },
  });
  if (!values["no-build"]) buildPackages();
  const calls = Number(values.calls ?? 20_000);
  const inFlight = Number(values["in-flight"] ?? 50);
  const modules = await loadModules();
  const { shared, engine } = modules;
  const redis = await startBenchRedis();
  if (!redis.spawned)
    console.log("note: REDIS_URL is set; Redis CPU figures need a private Redis (unset it)");
  const stats = shared.createRedis(redis.url);
  const connection = shared.createRedis(redis.url, { coalesceWrites: true });
  const logger = shared.createLogger("silent");
  const rows: Array<Record<string, number | string>> = [];
  try {
    const runId = Date.now().toString(36);
    for (const variant of ABLATION_VARIANTS) {
      if (!variant.layers) continue;
      const env = { CASCADE_REDIS_PREFIX: `bench-res-micro-${runId}-${variant.label}`, LOG_LEVEL: "silent" };
      const config = shared.loadConfig(env, { raw: resilienceConfigFile(variant.layers) });
      const keys = shared.createKeys(config.settings.CASCADE_REDIS_PREFIX);
      const model = config.file.models[BENCH_MODEL];
      const data = buildUserJobData(modules, config, Date.now());
      if (!model || !data[0]) throw new Error("bench config lost its model");
      const prompt = shared.estimatePromptTokens(data[0].request);
      const maxTokens = shared.estimateMaxTokens(data[0].request);
      const completion = Math.min(24, maxTokens);
      const request = (index: number): HopRequest => ({
        providerId: BENCH_PROVIDER,
        modelId: BENCH_MODEL,
        model,
        tenant: BENCH_TENANT,
        user: `bench-user-${index % BENCH_USERS}`,
        route: "default",
        tokens: prompt + maxTokens,
        costUsd: shared.costUsd(model, prompt, maxTokens),
        timeoutMs: 30_000,
      });
      const outcome = {
        reason: undefined,
        promptTokens: prompt,
        completionTokens: completion,
        costUsd: shared.costUsd(model, prompt, completion),
      };

      // Node only: the stub answers at once.
      const stub = stubClient();
      const offline = new engine.Resilience(stub.client as never, config, keys, logger, shared.systemClock);
      const stubTickets: Ticket[] = [];
      for (let index = 0; index < 5000; index += 1) {
        const admission = await offline.admit(request(index));
        if (admission.admitted) await offline.settle(admission.ticket, outcome);
      }
      let cpu = process.cpuUsage();
      for (let index = 0; index < calls; index += 1) {
        const admission = await offline.admit(request(index));
        if (admission.admitted) stubTickets.push(admission.ticket);
      }
      const admitCpu = process.cpuUsage(cpu);
      const stubAdmitUs = (admitCpu.user + admitCpu.system) / calls;
      cpu = process.cpuUsage();
      for (const ticket of stubTickets) await offline.settle(ticket, outcome);
      const settleCpu = process.cpuUsage(cpu);
      const stubSettleUs = (settleCpu.user + settleCpu.system) / calls;

      // Real Redis, `inFlight` calls at a time on the worker-style connection (coalesced writes).
      const online = new engine.Resilience(connection, config, keys, logger, shared.systemClock);
      await inParallel(2000, inFlight, async (index) => {
        const admission = await online.admit(request(index));
        if (admission.admitted) await online.settle(admission.ticket, outcome);
      });
      const tickets: Ticket[] = [];
      let before = await snapshotRedis(stats);
      const timesBeforeAdmit = await snapshotCommandTimes(stats);
      cpu = process.cpuUsage();
      await inParallel(calls, inFlight, async (index) => {
        const admission = await online.admit(request(index));
        if (admission.admitted) tickets.push(admission.ticket);
      });
      const admitNode = process.cpuUsage(cpu);
      const timesAfterAdmit = await snapshotCommandTimes(stats);
      let after = await snapshotRedis(stats);
      const admitRedis = redisDelta(before, after);
      before = after;
      cpu = process.cpuUsage();
      await inParallel(tickets.length, inFlight, (index) => online.settle(tickets[index] as Ticket, outcome));
      const settleNode = process.cpuUsage(cpu);
      const timesAfterSettle = await snapshotCommandTimes(stats);
      after = await snapshotRedis(stats);
      const settleRedis = redisDelta(before, after);
      const commandTimes = {
        admit: commandTimesDelta(timesBeforeAdmit, timesAfterAdmit, calls),
        settle: commandTimesDelta(timesAfterAdmit, timesAfterSettle, calls),
      };
      if (tickets.length !== calls)
        console.log(`  ${variant.label}: only ${tickets.length} of ${calls} admitted`);

      const row: Record<string, number | string> = {
        variant: variant.label,
        keys_admit: stub.sent.admitKeys,
        bytes_admit: stub.sent.admitBytes,
        keys_settle: stub.sent.settleKeys,
        bytes_settle: stub.sent.settleBytes,
        node_us_admit_stub: stubAdmitUs,
        node_us_settle_stub: stubSettleUs,
        node_us_admit_redis: (admitNode.user + admitNode.system) / calls,
        node_us_settle_redis: (settleNode.user + settleNode.system) / calls,
        redis_us_admit: (admitRedis.cpuSeconds * 1e6) / calls,
        redis_us_settle: (settleRedis.cpuSeconds * 1e6) / calls,
        redis_cmds_admit: admitRedis.commands / calls,
        redis_cmds_settle: settleRedis.commands / calls,
      };

      const timesLine = (phase: "admit" | "settle") =>
        commandTimes[phase]
          .filter((entry) => entry.command !== "info")
          .map((entry) => `${entry.command} ${formatNumber(entry.calls)}×/${formatNumber(entry.usec)} µs`)
          .join(", ");
      row.command_times_admit = timesLine("admit");
      row.command_times_settle = timesLine("settle");

      if (variant.label === "all") {
        // The same KEYS and ARGV as the last admit, to scripts that do (almost) nothing.
        const captured: { keys: string[]; spec: string } = { keys: [], spec: "" };
        const capture = {
          defineCommand() {},
          async cascadeAdmit(numberOfKeys: number, ...args: string[]) {
            captured.keys = args.slice(0, numberOfKeys);
            captured.spec = args[numberOfKeys] as string;
            return [1, ""];
          },
        };
        await new engine.Resilience(capture as never, config, keys, logger, shared.systemClock).admit(
          request(1),
        );
        const probes = {
          script_return_only: "return 1",
          script_cjson_decode: "local spec = cjson.decode(ARGV[1]) return 1",
          script_time_and_decode: "local spec = cjson.decode(ARGV[1]) local t = redis.call('TIME') return 1",
        };
        for (const [name, lua] of Object.entries(probes)) {
          const sha = (await connection.script("LOAD", lua)) as string;
          await inParallel(2000, inFlight, () =>
            connection.evalsha(sha, captured.keys.length, ...captured.keys, captured.spec),
          );
          const start = await snapshotRedis(stats);
          await inParallel(calls, inFlight, () =>
            connection.evalsha(sha, captured.keys.length, ...captured.keys, captured.spec),
          );
          const end = await snapshotRedis(stats);
          row[`redis_us_${name}`] = (redisDelta(start, end).cpuSeconds * 1e6) / calls;
        }
        row.admit_spec = captured.spec;
      }
      rows.push(row);
      const show = (name: string) =>
        typeof row[name] === "number" ? formatNumber(row[name] as number) : String(row[name] ?? "-");
      console.log(
        `${variant.label.padEnd(9)} admit: ${show("keys_admit")} keys, ${show("bytes_admit")} B, node ${show("node_us_admit_stub")} µs (stub) / ${show("node_us_admit_redis")} µs (real), redis ${show("redis_us_admit")} µs, ${show("redis_cmds_admit")} cmds` +
          `\n          settle: ${show("keys_settle")} keys, ${show("bytes_settle")} B, node ${show("node_us_settle_stub")} µs (stub) / ${show("node_us_settle_redis")} µs (real), redis ${show("redis_us_settle")} µs, ${show("redis_cmds_settle")} cmds`,
      );
      console.log(`          per admit, Redis time by command (calls × / µs): ${row.command_times_admit}`);
      console.log(`          per settle: ${row.command_times_settle || "-"}`);
      if (variant.label === "all") {
        console.log(
          `          same KEYS+ARGV, redis µs per call: script returning at once ${show("redis_us_script_return_only")}, + cjson.decode ${show("redis_us_script_cjson_decode")}, + TIME ${show("redis_us_script_time_and_decode")}`,
        );
        console.log(`          admit spec (${String(row.admit_spec).length} B): ${row.admit_spec}`);
      }
    }
    const path = writeResults("resilience-micro", {
      bench: "resilience-micro",
      finished_at: new Date().toISOString(),
      calls,
      in_flight: inFlight,
      machine: machineInfo(),
      versions: modules.versions,
      rows,
    });
    console.log(`results: ${path}`);
  } finally {
    await connection.quit().catch(() => connection.disconnect());
    await stats.quit().catch(() => stats.disconnect());
    await redis.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`resilience micro bench failed: ${(error as Error)?.stack ?? error}`);
    process.exit(1);
  },
);
