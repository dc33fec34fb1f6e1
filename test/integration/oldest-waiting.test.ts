/**
 * The age of the oldest waiting job (cascade_queue_oldest_waiting_seconds, the dashboard's queue
 * row, the queue_age alert) when the oldest job is not near the front of the line: fair share
 * orders the prioritized set by priority and tenant round robin, so a less urgent job enqueued
 * first waits behind every more urgent one enqueued after it. Real API process, no worker.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chatRequest, FAKE_KEY_VALUE, fakeConfig, sleep } from "../e2e/helpers.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";

const OPS_KEY = "sk-ops-oldest-7c2d91";
const auth = { authorization: `Bearer ${OPS_KEY}` };

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
      CASCADE_REDIS_PREFIX: uniquePrefix("oldest"),
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

async function enqueue(priority: number): Promise<void> {
  const response = await fetch(`${api.url}/v1/jobs`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ request: chatRequest("wait in line"), priority }),
  });
  expect(response.status).toBe(202);
}

async function oldestFromMetrics(): Promise<number> {
  const page = await (await fetch(`${api.url}/metrics`, { headers: auth })).text();
  const line = page
    .split("\n")
    .find((each) => each.startsWith('cascade_queue_oldest_waiting_seconds{queue="completions"}'));
  return Number(line?.split(" ")[1]);
}

describe("the oldest waiting job", () => {
  it("is found behind more urgent work enqueued after it", async () => {
    await enqueue(10);
    await sleep(2_200);
    // More than any sample of the line's front: 120 urgent jobs, all younger.
    for (let batch = 0; batch < 4; batch += 1)
      await Promise.all(Array.from({ length: 30 }, () => enqueue(1)));
    expect(await oldestFromMetrics()).toBeGreaterThanOrEqual(2);
    const dashboard = (await (await fetch(`${api.url}/v1/dashboard`, { headers: auth })).json()) as {
      queue: { oldest_waiting_age_s: number | null };
    };
    expect(dashboard.queue.oldest_waiting_age_s).toBeGreaterThanOrEqual(2);
  });
});
