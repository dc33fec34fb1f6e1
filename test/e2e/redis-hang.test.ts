/**
 * A Redis that keeps its connections open and stops answering (SIGSTOP: a stalled host, a frozen
 * VM, a fork that hangs) is not an outage ioredis sees: the connection stays "ready", so the API's
 * gate lets requests through and their commands wait for replies. They must get the same bounded
 * answer as during an outage, `503` with `Retry-After` after about `API_REDIS_WAIT_MS`, and not
 * wait the fixed 10 s command timeout the API had before (ADR 0015). Once Redis answers again
 * the API serves as before. Work that is no request's wait (the admin board's clean, a batch's
 * enqueue) has a connection of its own with a long timeout: a Redis slow for a few seconds
 * (CLIENT PAUSE WRITE) delays it without failing it. A worker simply waits for Redis: the jobs it
 * held and the ones queued all finish once Redis answers again.
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
import { testRedis } from "../support/redis-clients.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";
import { chatRequest, postJob, waitForTerminal } from "./helpers.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 300 } } },
  models: { echo: { provider: "sim" } },
  routes: { default: { chain: [{ model: "echo" }] } },
};
const WAIT_MS = 1000;

let redis: SpawnedRedis;
const redisUrl = () => redis.url;
let dir: TempDir;
let api: CascadeApi;
let worker: CascadeProcess;

beforeAll(async () => {
  redis = await spawnRedisServer();
  dir = makeTempDir();
  const env = {
    REDIS_URL: redis.url,
    CASCADE_REDIS_PREFIX: uniquePrefix("hang"),
    CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
    API_REDIS_WAIT_MS: String(WAIT_MS),
    WORKER_CONCURRENCY: "10",
  };
  [api, worker] = await Promise.all([startApi({ env }), startWorker({ env })]);
});

afterAll(async () => {
  redis?.kill("SIGCONT");
  await stopAllCascadeProcesses();
  await redis?.stop();
  dir?.cleanup();
});

describe("a Redis that stops answering", () => {
  it("gets requests a 503 with Retry-After after about API_REDIS_WAIT_MS, then serves again", async () => {
    const queued = await postJob(api.url, { request: chatRequest("before the stall") });
    expect(queued.status).toBe(202);

    redis.kill("SIGSTOP");
    try {
      const timed = async (path: string, init?: RequestInit) => {
        const started = Date.now();
        const response = await fetch(`${api.url}${path}`, init);
        return { path, response, body: await response.json(), ms: Date.now() - started };
      };
      const answers = await Promise.all([
        timed("/v1/jobs", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ request: chatRequest("during the stall") }),
        }),
        timed(`/v1/jobs/${queued.body.id}`),
        timed(`/v1/jobs/${queued.body.id}?wait=5`),
        timed("/v1/usage"),
        timed("/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "echo", messages: [{ role: "user", content: "during the stall" }] }),
        }),
        timed("/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "echo",
            stream: true,
            messages: [{ role: "user", content: "streamed during the stall" }],
          }),
        }),
        timed("/readyz"),
      ]);
      for (const answer of answers) {
        expect(answer.response.status, answer.path).toBe(503);
        expect(answer.body.error.type, answer.path).toBe("service_unavailable_error");
        expect(answer.body.error.message, answer.path).toMatch(/Redis/);
        // Bounded by the configured wait, with room for a loaded machine; not the old 10 s.
        expect(answer.ms, answer.path).toBeLessThan(WAIT_MS + 2_500);
        // Every route, the readiness probe included, says when to try again.
        expect(answer.response.headers.get("retry-after"), answer.path).toMatch(/^\d+$/);
      }
      // A scrape still gets the process's own series (an outage is when they matter most), and no
      // cluster-wide gauge rather than a stale one; it was a 503 too.
      const started = Date.now();
      const scrape = await fetch(`${api.url}/metrics`);
      const page = await scrape.text();
      expect(scrape.status, page).toBe(200);
      expect(Date.now() - started).toBeLessThan(WAIT_MS + 2_500);
      expect(page).toMatch(/^cascade_redis_up 0$/m);
      expect(page).toMatch(/^# TYPE cascade_gateway_requests_total counter$/m);
      expect(page).toMatch(/^process_cpu_user_seconds_total [\d.e+-]+$/m);
      expect(page).not.toMatch(/^cascade_queue_jobs\{/m);
      // A read changes nothing: its 503 does not say a change may still take effect.
      const read = answers.find((answer) => answer.path === `/v1/jobs/${queued.body.id}`);
      expect(read?.body.error.message).not.toMatch(/may still take effect/);
      expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    } finally {
      redis.kill("SIGCONT");
    }

    const after = await postJob(api.url, { request: chatRequest("after the stall") });
    expect(after.status).toBe(202);
    expect((await fetch(`${api.url}/v1/jobs/${queued.body.id}`)).status).toBe(200);
    expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
    const page = await (await fetch(`${api.url}/metrics`)).text();
    expect(page).toMatch(/^cascade_redis_up 1$/m);
    expect(page).toMatch(/^cascade_queue_jobs\{queue="completions",state="waiting"\} \d+$/m);
    expect(api.exitStatus).toBeUndefined();
  });

  it("fails a request's write after the wait while a slow Redis only delays the board's clean", async () => {
    const redis = testRedis(redisUrl());
    try {
      // Redis holds every write for 2.5 s: longer than a request may wait, far below the
      // background connection's timeout.
      await redis.client("PAUSE", "2500", "WRITE");
      const started = Date.now();
      const [posted, cleaned] = await Promise.all([
        postJob(api.url, { request: chatRequest("during the pause") }),
        fetch(`${api.url}/admin/queues/api/queues/completions/clean/completed`, { method: "PUT" }),
      ]);
      expect(posted.status).toBe(503);
      expect(posted.body.error.type).toBe("service_unavailable_error");
      // The add was sent and may run once Redis wakes: the client is told so, and how to retry.
      expect(posted.body.error.message).toMatch(/may still take effect.*Idempotency-Key/);
      expect(cleaned.status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    } finally {
      await redis.client("UNPAUSE").catch(() => {});
      redis.disconnect();
    }
    expect((await postJob(api.url, { request: chatRequest("after the pause") })).status).toBe(202);
  });

  it("finishes every job that was running or queued when Redis stalled, once it answers again", async () => {
    const posted = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        postJob(api.url, { request: chatRequest(`stalled ${index}`) }),
      ),
    );
    for (const created of posted) expect(created.status).toBe(202);
    // Some are running (300 ms calls, 10 at a time) when Redis stops answering for 3 s.
    await new Promise((resolve) => setTimeout(resolve, 200));
    redis.kill("SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    redis.kill("SIGCONT");
    for (const created of posted) {
      expect((await waitForTerminal(api.url, created.body.id, 20_000)).status).toBe("succeeded");
    }
    expect(worker.exitStatus).toBeUndefined();
    expect(api.exitStatus).toBeUndefined();
  });
});
