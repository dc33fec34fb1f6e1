/**
 * The Cascade worker's per-job pieces timed alone, in one process with no Redis: µs of CPU per
 * operation (all threads of this process, so async log writes count). Complements ablation.ts,
 * whose numbers include Redis and scheduling. Usage:
 *   node --import tsx bench/throughput/micro.ts [--iterations 50000] [--no-build]
 */
import { parseArgs } from "node:util";
import { buildPackages, loadModules } from "../support/modules.js";
import { BENCH_MODEL, benchConfigFile, buildJobData } from "./workload.js";

interface Case {
  name: string;
  run(index: number): unknown;
}

async function measure(
  entry: Case,
  iterations: number,
): Promise<{ name: string; cpu_us: number; wall_us: number }> {
  const warmup = Math.min(iterations, 10_000);
  for (let index = 0; index < warmup; index += 1) await entry.run(index);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < iterations; index += 1) await entry.run(index);
  // Let async log writes and finalizers settle inside the measurement.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const wall = (performance.now() - started - 50) * 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    name: entry.name,
    cpu_us: (cpu.user + cpu.system) / iterations,
    wall_us: wall / iterations,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { iterations: { type: "string" }, "no-build": { type: "boolean" } },
  });
  if (!values["no-build"]) buildPackages();
  const iterations = Number(values.iterations ?? 50_000);
  const modules = await loadModules();
  const { shared, engine, pino } = modules;
  const config = shared.loadConfig(
    { CASCADE_REDIS_PREFIX: "bench", LOG_LEVEL: "info" },
    { raw: benchConfigFile() },
  );
  const data = buildJobData(modules, config, Date.now());
  const serialized = JSON.stringify(data);
  const providers = engine.createProviderRegistry(config);
  const destination = pino.destination({ dest: "/dev/null", sync: false });
  const logger = shared.createLogger("info", { name: "cascade-worker" }, destination);
  const plainLogger = shared.createLogger("info", { name: "cascade-worker", redact: undefined }, destination);
  const silent = shared.createLogger("silent");
  const fields = (index: number) => ({
    job_id: `job_${index}`,
    tenant: data.tenant,
    route: data.route,
    hop: 0,
    current_model: BENCH_MODEL,
    provider: "bench-sim",
    outcome: "success",
    fallback_reason: undefined,
    http_status: undefined,
    duration_ms: 0,
  });
  const chain = (target: typeof logger, index: number) =>
    engine.runChain({
      jobId: `job_${index}`,
      data,
      config,
      providers,
      clock: shared.systemClock,
      logger: target,
      random: Math.random,
      signal: new AbortController().signal,
      saveProgress: async () => {},
    });
  const outcome = await chain(silent, 0);
  const cases: Case[] = [
    { name: "JSON.parse(job data) (BullMQ does this anyway)", run: () => JSON.parse(serialized) },
    { name: "jobDataSchema.safeParse(job data)", run: () => shared.jobDataSchema.safeParse(data) },
    { name: "new AbortController()", run: () => new AbortController() },
    { name: "AbortSignal.timeout(30000)", run: () => AbortSignal.timeout(30_000) },
    {
      name: "controller + AbortSignal.timeout + AbortSignal.any (callHop)",
      run: () => AbortSignal.any([new AbortController().signal, AbortSignal.timeout(30_000)]),
    },
    {
      name: "alternative: controller + setTimeout/clearTimeout + forwarded abort",
      run: () => {
        const job = new AbortController();
        const hop = new AbortController();
        const forward = () => hop.abort(job.signal.reason);
        job.signal.addEventListener("abort", forward, { once: true });
        const timer = setTimeout(() => hop.abort(new Error("timeout")), 30_000);
        clearTimeout(timer);
        job.signal.removeEventListener("abort", forward);
        return hop.signal;
      },
    },
    {
      name: "structuredClone(empty progress)",
      run: () => structuredClone({ hop: 0, tries: 0, attempts: [], cost_usd: 0 }),
    },
    { name: "JSON.stringify(outcome) (BullMQ stores it)", run: () => JSON.stringify(outcome) },
    {
      name: "hop log line, pino info, no redact",
      run: (index) => plainLogger.info(fields(index), "hop succeeded"),
    },
    {
      name: "hop log line, pino info, createLogger redact",
      run: (index) => logger.info(fields(index), "hop succeeded"),
    },
    { name: "runChain, logger silent", run: (index) => chain(silent, index) },
    { name: "runChain, logger info (redact)", run: (index) => chain(logger, index) },
  ];
  console.log(
    `micro costs, ${iterations} iterations each (µs per operation; cpu = all threads of this process)`,
  );
  for (const entry of cases) {
    const result = await measure(entry, iterations);
    console.log(
      `${result.cpu_us.toFixed(2).padStart(8)} µs cpu ${result.wall_us.toFixed(2).padStart(8)} µs wall  ${result.name}`,
    );
  }
  destination.end();
  process.exit(0);
}

await main();
