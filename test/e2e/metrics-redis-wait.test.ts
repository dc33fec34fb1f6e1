/**
 * How long GET /metrics waits for Redis: its reads of the deployment-wide gauges (alerts included)
 * share one deadline, API_REDIS_WAIT_MS held within 1-5 s. While Redis is stalled a scrape answers
 * after about one wait (it waited twice: the gauges, then cascade_alerts_firing, so 5,000 ms took a
 * whole Prometheus scrape timeout); with API_REDIS_WAIT_MS=0 (do not wait for a reconnect) a
 * healthy deployment's scrape still carries the gauges (none ever did: no reply comes in 0 ms).
 * Real API processes, a redis-server of the test's own (SIGSTOP).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 10 } } },
  models: { echo: { provider: "sim" } },
  routes: { default: { chain: [{ model: "echo" }] } },
};
const WAIT_MS = 3_000;
let redis: SpawnedRedis;
let dir: TempDir;
let waiting: CascadeApi;
let notWaiting: CascadeApi;

beforeAll(async () => {
  redis = await spawnRedisServer();
  dir = makeTempDir();
  const env = (waitMs: number) => ({
    REDIS_URL: redis.url,
    CASCADE_REDIS_PREFIX: uniquePrefix("scrape-wait"),
    CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
    API_REDIS_WAIT_MS: String(waitMs),
  });
  [waiting, notWaiting] = await Promise.all([
    startApi({ env: env(WAIT_MS), name: "api-wait" }),
    startApi({ env: env(0), name: "api-no-wait" }),
  ]);
});

afterAll(async () => {
  redis?.kill("SIGCONT");
  await stopAllCascadeProcesses();
  await redis?.stop();
  dir?.cleanup();
});

async function scrape(api: CascadeApi): Promise<{ status: number; page: string; ms: number }> {
  const started = Date.now();
  const response = await fetch(`${api.url}/metrics`);
  return { status: response.status, page: await response.text(), ms: Date.now() - started };
}

describe("GET /metrics and Redis", () => {
  it("carries the deployment-wide gauges with API_REDIS_WAIT_MS=0 and Redis healthy", async () => {
    const { status, page } = await scrape(notWaiting);
    expect(status).toBe(200);
    expect(page).toMatch(/^cascade_redis_up 1$/m);
    expect(page).toMatch(/^cascade_queue_jobs\{queue="completions",state="waiting"\} \d+$/m);
  });

  it("answers within about one API_REDIS_WAIT_MS while Redis is stalled", async () => {
    expect((await scrape(waiting)).status).toBe(200);
    redis.kill("SIGSTOP");
    try {
      const { status, page, ms } = await scrape(waiting);
      expect(status).toBe(200);
      expect(page).toMatch(/^cascade_redis_up 0$/m);
      expect(page).not.toMatch(/^cascade_alerts_firing\{/m);
      // Two waits would be 6 s; one is 3 s, with room for a loaded machine.
      expect(ms, `scrape took ${ms} ms`).toBeLessThan(WAIT_MS + 1_500);
    } finally {
      redis.kill("SIGCONT");
    }
    expect((await scrape(waiting)).page).toMatch(/^cascade_redis_up 1$/m);
  });
});
