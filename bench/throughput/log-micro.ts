/**
 * The worker's per-hop log line alone, through variants of the logger, interleaved: CPU µs per
 * line of this process (all threads, so the asynchronous writes to /dev/null count) and wall µs.
 * Lines are written in bursts of `--burst` (one event-loop turn each, as a busy worker writes
 * them), so the buffered destination's writes complete between bursts as they do in production.
 *   node --import tsx bench/throughput/log-micro.ts [--lines 200000] [--rounds 3] [--burst 50]
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { loadModules } from "../support/modules.js";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "200000" },
    rounds: { type: "string", default: "3" },
    burst: { type: "string", default: "50" },
  },
});
const lines = Number(values.lines);
const rounds = Number(values.rounds);
const burst = Number(values.burst);

const modules = await loadModules();
const { shared, pino } = modules;

const fields = (index: number) => ({
  job_id: `job_01JFAKE${index.toString(36).padStart(10, "0")}`,
  tenant: "default",
  route: "default",
  hop: 0,
  current_model: "bench-model",
  provider: "bench-sim",
  outcome: "success",
  fallback_reason: undefined,
  http_status: 200,
  duration_ms: 0,
});

type Variant = { name: string; make(): { log(index: number): void; end(): Promise<void> } };

function fromLogger(
  make: () => { logger: ReturnType<typeof shared.createLogger>; destination: { end(): void; flush(): void } },
) {
  return () => {
    const { logger, destination } = make();
    const child = logger.child({ component: "completion" });
    return {
      log: (index: number) => child.info(fields(index), "hop succeeded"),
      end: async () => {
        logger.flush();
        await new Promise((resolve) => setTimeout(resolve, 20));
        destination.end();
      },
    };
  };
}

const variants: Variant[] = [
  {
    name: "createLogger (REDACT_PATHS, createLogDestination)",
    make: fromLogger(() => {
      const destination = shared.createLogDestination("/dev/null");
      return { logger: shared.createLogger("info", { name: "cascade-worker" }, destination), destination };
    }),
  },
  {
    name: "pino, no redact, same destination",
    make: fromLogger(() => {
      const destination = shared.createLogDestination("/dev/null");
      return {
        logger: pino.pino({ level: "info", name: "cascade-worker", base: { pid: process.pid } }, destination),
        destination,
      };
    }),
  },
  {
    name: "createLogger, sonic-boom minLength 32768, maxWrite 65536",
    make: fromLogger(() => {
      const destination = pino.pino.destination({
        dest: "/dev/null",
        sync: false,
        minLength: 32768,
        maxWrite: 65536,
      });
      return { logger: shared.createLogger("info", { name: "cascade-worker" }, destination), destination };
    }),
  },
  {
    name: "createLogger, sonic-boom sync (a write(2) per line)",
    make: fromLogger(() => {
      const destination = pino.pino.destination({ dest: "/dev/null", sync: true });
      return { logger: shared.createLogger("info", { name: "cascade-worker" }, destination), destination };
    }),
  },
];

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function measure(variant: Variant) {
  const subject = variant.make();
  for (let index = 0; index < 20000; index += 1) subject.log(index);
  await tick();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < lines; index += 1) {
    subject.log(index);
    if (index % burst === burst - 1) await tick();
  }
  await subject.end();
  const cpu = process.cpuUsage(cpuBefore);
  const wall = performance.now() - started;
  return { cpu: (cpu.user + cpu.system) / lines, wall: (wall * 1000) / lines };
}

const results = new Map<string, { cpu: number[]; wall: number[] }>();
for (let round = 1; round <= rounds; round += 1) {
  for (const variant of variants) {
    const result = await measure(variant);
    const entry = results.get(variant.name) ?? { cpu: [], wall: [] };
    entry.cpu.push(result.cpu);
    entry.wall.push(result.wall);
    results.set(variant.name, entry);
  }
}
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
console.log(`${lines} lines × ${rounds} rounds, bursts of ${burst}; medians, µs per line`);
for (const [name, entry] of results) {
  console.log(
    `  ${median(entry.cpu).toFixed(2).padStart(6)} cpu  ${median(entry.wall).toFixed(2).padStart(6)} wall  ${name}`,
  );
}
