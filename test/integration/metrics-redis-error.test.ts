/**
 * GET /metrics when Redis answers a scrape's reads with an error rather than not at all (a key of
 * the wrong type, an ACL that forbids a command, OOM on a script): the page is still this
 * process's own counters, 200, without the deployment-wide gauges and with cascade_redis_up 0, as
 * while Redis is away, and the error is logged. It was a 500, so Prometheus lost the API's
 * counters for as long as the error lasted. Real API process, the error made from outside.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chatRequest, FAKE_KEY_VALUE, fakeConfig } from "../e2e/helpers.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { testRedis } from "../support/redis-clients.js";

const OPS_KEY = "sk-ops-metrics-error-41b7";
const auth = { authorization: `Bearer ${OPS_KEY}` };
const prefix = uniquePrefix("metrics-error");

let dir: TempDir;
let api: CascadeApi;

beforeAll(async () => {
  dir = makeTempDir();
  const config = {
    ...fakeConfig("http://127.0.0.1:9"),
    tenants: { ops: { api_keys_env: "OPS_KEYS", admin: true } },
  };
  api = await startApi({
    env: {
      REDIS_URL: inject("redisUrl"),
      CASCADE_REDIS_PREFIX: prefix,
      CASCADE_CONFIG: dir.write("cascade.json", config),
      FAKE_KEY: FAKE_KEY_VALUE,
      OPS_KEYS: OPS_KEY,
    },
  });
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  dir?.cleanup();
});

const sampleOf = (page: string, name: string) =>
  page.split("\n").find((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`));

describe("GET /metrics when Redis answers with an error", () => {
  it("answers 200 with the process's own counters, no cluster gauges, cascade_redis_up 0", async () => {
    const sent = await fetch(`${api.url}/v1/jobs`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ request: chatRequest("count me") }),
    });
    expect(sent.status).toBe(202);
    const before = await (await fetch(`${api.url}/metrics`, { headers: auth })).text();
    expect(sampleOf(before, "cascade_redis_up")).toBe("cascade_redis_up 1");
    expect(sampleOf(before, "cascade_queue_jobs")).toBeDefined();

    // The queue's prioritized set replaced by a string: every read of it is a WRONGTYPE error.
    const redis = testRedis(inject("redisUrl"));
    const key = `{${prefix}}:completions:prioritized`;
    try {
      expect(await redis.type(key)).toBe("zset");
      await redis.del(key);
      await redis.set(key, "not a sorted set");
      const answer = await fetch(`${api.url}/metrics`, { headers: auth });
      const page = await answer.text();
      expect(answer.status, page.slice(0, 300)).toBe(200);
      expect(sampleOf(page, "cascade_redis_up")).toBe("cascade_redis_up 0");
      expect(sampleOf(page, "cascade_queue_jobs")).toBeUndefined();
      // The process's own figures are there: the HTTP requests it answered, its event loop.
      expect(page).toMatch(/^cascade_http_requests_total|^nodejs_eventloop_lag_seconds /m);
      await api.waitForLine(/WRONGTYPE/, 5_000);
    } finally {
      await redis.del(key);
      await redis.quit();
    }
    const after = await (await fetch(`${api.url}/metrics`, { headers: auth })).text();
    expect(sampleOf(after, "cascade_redis_up")).toBe("cascade_redis_up 1");
  });
});
