/**
 * The I/O bench's baseline worker process: a raw BullMQ `Worker` whose processor waits
 * `IO_LATENCY_MS` on a timer and returns `{ ok: true }`, at `IO_CONCURRENCY`, on the connection
 * settings Cascade's worker uses (`createRedis(url, { coalesceWrites: true })`) and the worker
 * options it uses (lock, stalled interval, removeOnComplete/Fail by age). Run by bench/io/run.ts
 * as `node --import tsx bench/io/raw-worker.ts`; env: REDIS_URL, IO_PREFIX, IO_CONCURRENCY,
 * IO_LATENCY_MS, IO_BURN_US (diagnostic: CPU spun per job after the timer, default 0). It prints
 * `ready` once the worker is connected.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { loadModules } from "../support/modules.js";

const modules = await loadModules();
const { shared, bullmq } = modules;
const env = process.env;
const latencyMs = Number(env.IO_LATENCY_MS ?? 200);
const burnNs = BigInt(Math.round(Number(env.IO_BURN_US ?? 0) * 1000));
const connection = shared.createRedis(env.REDIS_URL as string, { coalesceWrites: true });
const worker = new bullmq.Worker(
  shared.QUEUE_NAMES.completions,
  async () => {
    await sleep(latencyMs);
    if (burnNs > 0n) {
      const until = process.hrtime.bigint() + burnNs;
      while (process.hrtime.bigint() < until) {}
    }
    return { ok: true };
  },
  {
    connection: connection as never,
    prefix: env.IO_PREFIX as string,
    concurrency: Number(env.IO_CONCURRENCY ?? 500),
    lockDuration: 30_000,
    stalledInterval: 30_000,
    maxStalledCount: 5,
    removeOnComplete: { age: 7 * 24 * 3600 },
    removeOnFail: { age: 7 * 24 * 3600 },
  },
);
worker.on("error", (error) => process.stderr.write(`raw worker error: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write("ready\n");
process.on("SIGTERM", () => process.exit(0));
