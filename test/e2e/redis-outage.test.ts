/**
 * Workers that silently stop after a Redis outage are BullMQ's most-reported failure (bullmq
 * #4585, #4479, #4378, #648). Here a private, append-only Redis is killed under a running API and
 * worker and started again on the same port and data: the processes stay up, the job queued
 * before the outage is not lost, and jobs submitted afterwards run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CascadeApi,
  type CascadeProcess,
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

const WAIT_MS = 3000;
let redis: SpawnedRedis;
let dir: TempDir;
let api: CascadeApi;
let worker: CascadeProcess;

beforeAll(async () => {
  redis = await spawnRedisServer({ appendonly: true });
  dir = makeTempDir();
  const env = {
    REDIS_URL: redis.url,
    CASCADE_REDIS_PREFIX: uniquePrefix("outage"),
    CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: "4",
    WORKER_LOCK_DURATION_MS: "2000",
    // Also the API's command timeout: long enough that a 503 within 1.5 s of the kill below comes
    // from the closed connection, not from the timeout.
    API_REDIS_WAIT_MS: String(WAIT_MS),
  };
  [api, worker] = await Promise.all([startApi({ env }), startWorker({ env })]);
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  await redis?.stop();
  dir?.cleanup();
});

describe("a Redis outage", () => {
  it("is survived by API and worker: nothing accepted is lost and work resumes", async () => {
    const before = await postJob(api.url, { request: chatRequest("before the outage") });
    expect((await waitForTerminal(api.url, before.body.id, 10_000)).status).toBe("succeeded");

    // One more job, queued right before Redis dies (appendonly: it is on disk once acknowledged).
    const port = redis.port;
    const dataDir = redis.dir;
    const queued = await postJob(api.url, { request: chatRequest("queued across the outage") });
    expect(queued.status).toBe(202);
    // Requests whose commands are in flight when Redis dies: Redis is stopped first, so they are
    // surely waiting on its reply, then killed. They get their 503 as soon as the connection
    // closes, not after the API's command timeout (API_REDIS_WAIT_MS) or once Redis is back.
    redis.kill("SIGSTOP");
    await sleep(200);
    const inFlight = ["POST", "GET"].map(async (method) => {
      const response = await fetch(
        method === "POST" ? `${api.url}/v1/jobs` : `${api.url}/v1/jobs/${queued.body.id}`,
        method === "POST"
          ? {
              method,
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ request: chatRequest("in flight at the kill") }),
            }
          : {},
      );
      return { response, body: await response.json(), at: Date.now() };
    });
    await sleep(500);
    redis.kill("SIGKILL");
    const killedAt = Date.now();
    for (const answer of await Promise.all(inFlight)) {
      expect(answer.response.status).toBe(503);
      expect(answer.response.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(answer.body.error.type).toBe("service_unavailable_error");
      expect(answer.at - killedAt).toBeLessThan(1_500);
    }
    await sleep(1000);
    const during = await fetch(`${api.url}/readyz`);
    expect(during.status).toBe(503);
    // Requests that need Redis wait a short, bounded time (API_REDIS_WAIT_MS, here 3000), then
    // get a 503 with Retry-After in the error shape: never held until Redis returns.
    const timed = async (path: string, init?: RequestInit) => {
      const started = Date.now();
      const response = await fetch(`${api.url}${path}`, init);
      return { response, body: await response.json(), ms: Date.now() - started };
    };
    const outageAnswers = await Promise.all([
      timed("/v1/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ request: chatRequest("during the outage") }),
      }),
      timed(`/v1/jobs/${queued.body.id}`),
      timed("/v1/usage"),
      // More waiting requests than Node's default listener limit: no warning may reach stderr.
      ...Array.from({ length: 12 }, () => timed(`/v1/jobs/${queued.body.id}`)),
    ]);
    for (const answer of outageAnswers) {
      expect(answer.response.status).toBe(503);
      expect(answer.response.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(answer.body.error.type).toBe("service_unavailable_error");
      expect(answer.body.error.message).toMatch(/Redis/);
      expect(answer.ms).toBeLessThan(WAIT_MS + 2_500);
    }
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);

    redis = await spawnRedisServer({ port, dir: dataDir, appendonly: true });
    const started = Date.now();
    while ((await fetch(`${api.url}/readyz`)).status !== 200) {
      if (Date.now() - started > 15_000) throw new Error("API did not see Redis come back");
      await sleep(200);
    }
    expect((await waitForTerminal(api.url, queued.body.id, 30_000)).status).toBe("succeeded");
    const after = await Promise.all(
      Array.from({ length: 5 }, (_, index) => postJob(api.url, { request: chatRequest(`after ${index}`) })),
    );
    for (const created of after) {
      expect(created.status).toBe(202);
      expect((await waitForTerminal(api.url, created.body.id, 30_000)).status).toBe("succeeded");
    }
    expect(worker.exitStatus).toBeUndefined();
    expect(api.exitStatus).toBeUndefined();
    // Every line either process wrote is one JSON log line: no "[ioredis] Unhandled error event"
    // from a connection without a listener, no raw multi-line Error dumps.
    for (const process of [api, worker]) {
      const stray = [...process.stdout, ...process.stderr].filter((line) => {
        if (line.trim() === "") return false;
        try {
          return typeof JSON.parse(line) !== "object";
        } catch {
          return true;
        }
      });
      expect(stray.slice(0, 12), process.name).toEqual([]);
    }
  });
});
