/**
 * The oldest waiting job (cascade_queue_oldest_waiting_seconds, the dashboard's queue row, the
 * queue_age alert) counts jobs that wait in BullMQ's delayed set without having started: those a
 * worker took and parked for their tenant's max_concurrency or a limit (their status `queued`).
 * An audit saw the gauge drop to 0, and a fired queue_age alert resolve, while ten such jobs
 * still waited, the oldest 17 s. A job waiting between tries (a backoff after an attempt) is
 * running, not waiting: it does not count.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const KEY = "parked-acme-key-1";
const OPS = "parked-ops-key-1";

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "parked",
    config: (url: string) => ({
      providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
      models: { a: { provider: "p", name: "up-a" } },
      routes: { default: { chain: [{ model: "a", timeout_ms: 60_000 }] } },
      tenants: {
        acme: { api_keys_env: "ACME_KEYS", max_concurrency: 1 },
        ops: { api_keys_env: "OPS_KEYS", admin: true },
      },
    }),
    workers: 1,
    concurrency: 4,
    env: { ACME_KEYS: KEY, OPS_KEYS: OPS },
  });
});

afterAll(async () => {
  await stack?.close();
});

async function oldestFromMetrics(): Promise<number> {
  const page = (await stack.request("GET", "/metrics", undefined, OPS)).body as string;
  const line = page
    .split("\n")
    .find((each) => each.startsWith('cascade_queue_oldest_waiting_seconds{queue="completions"}'));
  return Number(line?.split(" ")[1]);
}

describe("jobs parked in the delayed set for their tenant's max_concurrency", () => {
  it("count as waiting, in the gauge and on the dashboard", async () => {
    stack.fake.setDefault("up-a", { kind: "hang" });
    const ids = [];
    for (let index = 0; index < 3; index++)
      ids.push(
        await stack.submit({ request: { messages: [{ role: "user", content: `parked ${index}` }] } }, KEY),
      );
    // One runs (its call hangs); the other two are taken and parked behind it.
    const deadline = Date.now() + 10_000;
    const delayedKey = `${stack.tag}:completions:delayed`;
    while ((await stack.redis.zcard(delayedKey)) < 2 && Date.now() < deadline) await sleep(50);
    expect(await stack.redis.zcard(delayedKey)).toBe(2);
    expect(await stack.redis.zcard(`${stack.tag}:completions:prioritized`)).toBe(0);
    expect(await stack.redis.llen(`${stack.tag}:completions:wait`)).toBe(0);
    await sleep(2_200);
    // A parked job goes round: promoted when its wait ends, taken, refused, parked again (status
    // `running` for the moment it is taken). Read a few times: the gauge counts the one waiting.
    const statuses = await Promise.all(ids.map(async (id) => (await stack.job(id, KEY)).status));
    expect(statuses.filter((status) => status === "queued").length).toBeGreaterThanOrEqual(1);
    let oldest = 0;
    let dashboardOldest = 0;
    for (let tries = 0; tries < 5 && (oldest < 2 || dashboardOldest < 2); tries++) {
      oldest = Math.max(oldest, await oldestFromMetrics());
      const dashboard = (await stack.request("GET", "/v1/dashboard", undefined, OPS)).body;
      dashboardOldest = Math.max(dashboardOldest, dashboard.queue.oldest_waiting_age_s ?? 0);
      if (oldest < 2 || dashboardOldest < 2) await sleep(200);
    }
    expect(oldest).toBeGreaterThanOrEqual(2);
    expect(dashboardOldest).toBeGreaterThanOrEqual(2);
    for (const id of ids) await stack.request("DELETE", `/v1/jobs/${id}`, undefined, KEY);
  });
});
