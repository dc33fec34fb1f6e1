/**
 * A Redis gone quiet after a gateway call was admitted (SIGSTOP: a frozen host) must not hold the
 * call's answer: a settlement written before the answer goes (a budget's correction no lease
 * covers, budget-back-to-back.test.ts) is waited for a quarter of a second at most, and whatever
 * else the success path writes goes on in the background. A guard: this run answers in time with
 * or without that bound (its settlement did not wait on the frozen Redis here), so it shows the
 * property, not which line keeps it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";
import { FAKE_KEY_VALUE, sleep } from "./helpers.js";

const KEY = "frozen-settle-key-1";
let redis: SpawnedRedis;
let dir: TempDir;
let api: CascadeApi;
let fake: FakeOpenAI;

beforeAll(async () => {
  redis = await spawnRedisServer();
  fake = await startFakeOpenAI();
  dir = makeTempDir();
  const config = {
    providers: { p: { type: "openai", base_url: fake.url, api_key_env: "FAKE_KEY" } },
    models: { a: { provider: "p", name: "up-a", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
    routes: { default: { chain: [{ model: "a", timeout_ms: 30_000 }] } },
    // $1 a day, estimates of ~$0.1: no room for a lease, every call reserved in Redis, and each
    // corrected to its real cost (~$0.02) once answered.
    tenants: { acme: { api_keys_env: "ACME_KEYS", budget: { daily_usd: 1 } } },
  };
  api = await startApi({
    env: {
      REDIS_URL: redis.url,
      CASCADE_REDIS_PREFIX: uniquePrefix("frozensettle"),
      CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
      FAKE_KEY: FAKE_KEY_VALUE,
      ACME_KEYS: KEY,
      // Long enough that a settlement waiting on the frozen Redis would show.
      API_REDIS_WAIT_MS: "10000",
    },
  });
});

afterAll(async () => {
  redis?.kill("SIGCONT");
  await stopAllCascadeProcesses();
  await fake?.close();
  await redis?.stop();
  dir?.cleanup();
});

describe("a gateway call admitted before Redis froze", () => {
  it("is answered when its call ends, not when Redis comes back", async () => {
    fake.setDefault("up-a", {
      kind: "ok",
      delayMs: 1500,
      usage: { prompt_tokens: 20, completion_tokens: 1 },
    });
    const started = Date.now();
    const answer = fetch(`${api.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "default",
        max_tokens: 100,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    // Admitted (its reservation written) within the first half second; the call takes 1.5 s.
    await sleep(600);
    redis.kill("SIGSTOP");
    try {
      const response = await Promise.race([answer, sleep(6_000).then(() => undefined)]);
      expect(response?.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(3_500);
    } finally {
      redis.kill("SIGCONT");
    }
  }, 20_000);
});
