/**
 * A Redis at its `maxmemory` (with `noeviction`, as Cascade requires) refuses every write with
 * `OOM command not allowed`. Found by a failure-injection audit: the API answered such a refusal
 * with a bare 500 and no Retry-After, and a worker started meanwhile spun a core retrying BullMQ's
 * fetch of the next job at once, logging ~6,000 "worker error" lines a second. Now the API answers
 * 503 with Retry-After, naming the memory limit; a worker waits between fetches and logs the
 * refusal now and then; the queued job runs once Redis takes writes again.
 * Real processes on a private redis-server.
 */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";
import { chatRequest, postJob, sleep, waitForTerminal } from "./helpers.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 20 } } },
  models: { echo: { provider: "sim" } },
  routes: { default: { chain: [{ model: "echo" }] } },
};

let redis: SpawnedRedis;
let admin: Redis;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;

/** CPU seconds (user + system) the process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

beforeAll(async () => {
  redis = await spawnRedisServer();
  admin = new Redis(redis.url);
  dir = makeTempDir();
  env = {
    REDIS_URL: redis.url,
    CASCADE_REDIS_PREFIX: uniquePrefix("oom"),
    CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: "4",
  };
  api = await startApi({ env });
});

afterAll(async () => {
  await admin?.config("SET", "maxmemory", "0").catch(() => {});
  admin?.disconnect();
  await stopAllCascadeProcesses();
  await redis?.stop();
  dir?.cleanup();
});

describe("a Redis at its maxmemory", () => {
  it("gets 503 with Retry-After from the API, and a worker started meanwhile waits instead of spinning", async () => {
    const queued = await postJob(api.url, { request: chatRequest("queued before the limit") });
    expect(queued.status).toBe(202);
    // Every write is refused from here on.
    await admin.config("SET", "maxmemory", "1");

    const refused = await fetch(`${api.url}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ request: chatRequest("refused") }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBeTruthy();
    const body = await refused.json();
    expect(body.error.type).toBe("service_unavailable_error");
    expect(body.error.message).toMatch(/memory/i);

    const worker = await startWorker({ env, name: "worker-oom" });
    const cpuBefore = cpuSeconds(worker.pid);
    const linesBefore = worker.stdout.length;
    await sleep(4000);
    const cpu = cpuSeconds(worker.pid) - cpuBefore;
    const lines = worker.stdout.length - linesBefore;
    // It spun ~0.9 of a core and wrote ~12,000 lines a second before.
    expect(cpu, worker.describe()).toBeLessThan(1);
    expect(lines, worker.describe()).toBeLessThan(40);

    await admin.config("SET", "maxmemory", "0");
    const done = await waitForTerminal(api.url, queued.body.id, 20_000);
    expect(done.status).toBe("succeeded");
  });
});
