/**
 * Redis memory a finished job keeps until JOB_RETENTION_S removes it: `used_memory` after N jobs
 * ran through Cascade's worker (the throughput bench's job, zero-latency simulated provider; the
 * job hash holds its data and the JobOutcome as return value) minus before, per job, and
 * `MEMORY USAGE` of one finished job's hash. For docs/operations.md "Sizing".
 *   node --import tsx bench/throughput/retained-memory.ts [--jobs 5000]
 */
import { parseArgs } from "node:util";
import { loadModules } from "../support/modules.js";
import { startBenchRedis } from "../support/redis-server.js";
import { parseOptions } from "./options.js";
import { runCascadeRound } from "./sides.js";

const { values } = parseArgs({ options: { jobs: { type: "string", default: "5000" } }, strict: false });
const jobs = Number(values.jobs);
const modules = await loadModules();
const redis = await startBenchRedis({});
const stats = modules.shared.createRedis(redis.url);
const usedMemory = async () => Number(/used_memory:(\d+)/.exec((await stats.info("memory")) as string)?.[1]);
try {
  const options = { ...parseOptions(["--jobs", String(jobs), "--no-build"]), jobs };
  const before = await usedMemory();
  let perJobHash = Number.NaN;
  // The round deletes its keys when it ends: measure from a `completed` listener at the last job.
  const originalObliterate = modules.bullmq.Queue.prototype.obliterate;
  let after = Number.NaN;
  modules.bullmq.Queue.prototype.obliterate = async function (
    this: InstanceType<typeof modules.bullmq.Queue>,
    ...args
  ) {
    after = await usedMemory();
    const [id] = (await this.getCompleted(0, 0)).map((job) => job.id);
    if (id) perJobHash = Number(await stats.call("MEMORY", "USAGE", this.toKey(id), "SAMPLES", "0"));
    return originalObliterate.apply(this, args as never);
  };
  const result = await runCascadeRound({
    modules,
    redisUrl: redis.url,
    statsRedis: undefined,
    options,
    runId: Date.now().toString(36),
    round: 1,
    profiler: undefined,
  });
  console.log(
    `${result.completed} jobs finished: used_memory +${((after - before) / 1024 / 1024).toFixed(1)} MiB, ` +
      `${Math.round((after - before) / jobs)} bytes per finished job; MEMORY USAGE of one job hash ${perJobHash} bytes`,
  );
} finally {
  await stats.quit();
  await redis.stop();
}
