/**
 * A dead delivery stays listed for the retention from when it died, not from when it was
 * created: its index entry went in the same call that trimmed entries created before
 * now − JOB_RETENTION_S, so a delivery whose retries outlasted the retention (the default schedule
 * spans ~3.7 h; JOB_RETENTION_S=3600) was never listed as dead (black-box audit). And a record
 * outlives the longest wait between its attempts, so its retries send the body kept at the first.
 */
import {
  createKeys,
  deliveryRetentionSeconds,
  WebhookDeliveryStore,
  type WebhookJobData,
} from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack, uniquePrefix } from "../support/cascade-stack.js";
import { testRedis } from "../support/redis-clients.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const acme = { authorization: "Bearer acme-key" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("dead deliveries whose retries outlast JOB_RETENTION_S", () => {
  let stack: Stack;
  let sink: WebhookSink;
  beforeAll(async () => {
    sink = await startWebhookSink({ default: 500 });
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: {
        ACME_KEYS: "acme-key",
        ACME_WEBHOOK_SECRET: `whsec_${Buffer.from("cascade-test-acme-secret-0123456789").toString("base64")}`,
        JOB_RETENTION_S: "3",
      },
      config: {
        providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
        models: { fast: { provider: "sim" } },
        routes: { default: { chain: [{ model: "fast" }] } },
        tenants: { acme: { api_keys_env: "ACME_KEYS", webhook_secret_env: "ACME_WEBHOOK_SECRET" } },
        webhooks: { allow_private_networks: true, max_attempts: 4, retry_schedule_ms: [1500] },
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await sink?.close();
  });

  it("lists a delivery that has just gone dead, and its retries sent the first body", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "Hi" }] }, webhook: { url: sink.url } },
      headers: acme,
    });
    expect(created.status).toBe(202);
    await sink.waitForRequests(4, 15_000);
    await sleep(300);
    const dead = await stack.request("GET", "/v1/webhook-deliveries?status=dead", { headers: acme });
    expect(dead.body.data.map((each: { job_id: string }) => each.job_id)).toContain(created.body.id);
    const bodies = new Set(sink.requests.map((request) => request.body));
    expect(bodies.size).toBe(1);
  }, 30_000);
});

describe("the delivery indexes", () => {
  const redis = testRedis(undefined, { maxRetriesPerRequest: 1 });
  afterAll(() => redis.disconnect());
  const delivery = (id: string, createdAt: number): WebhookJobData => ({
    v: 1,
    delivery_id: id,
    webhook_id: `msg_${id}`,
    tenant: "acme",
    job_id: `job_${id}`,
    url: "https://example.com/hook",
    event_type: "job.succeeded",
    created_at: createdAt,
    body: "{}",
  });

  it("drop an entry once its record has expired, and keep an old delivery's whose record lives", async () => {
    const keys = createKeys(uniquePrefix("whd-trim"));
    const now = Math.floor(Date.now() / 1000);
    const store = new WebhookDeliveryStore(redis, keys, 3600);
    // Both created two hours ago: one died long ago (its record gone), one just now.
    await store.attempted(delivery("whd_gone", now - 7200), "dead", { httpStatus: 500 });
    await store.attempted(delivery("whd_live", now - 7200), "dead", { httpStatus: 500 });
    await redis.del(keys.webhookDelivery("whd_gone"));
    await store.attempted(delivery("whd_new", now), "dead", { httpStatus: 500 });
    expect(await redis.zrange(keys.webhookDeliveryIndex("acme", "dead"), 0, -1)).toEqual([
      "whd_live",
      "whd_new",
    ]);
    expect((await store.list("acme", "dead", 10))?.data.map((each) => each.id)).toEqual([
      "whd_new",
      "whd_live",
    ]);
  });

  it("are read past entries whose records expired: a page is never empty while more follow", async () => {
    const keys = createKeys(uniquePrefix("whd-list"));
    const now = Math.floor(Date.now() / 1000);
    const store = new WebhookDeliveryStore(redis, keys, 3600);
    for (const [id, at] of [
      ["whd_old1", now - 30],
      ["whd_old2", now - 20],
      ["whd_new1", now - 10],
      ["whd_new2", now - 5],
      ["whd_new3", now],
    ] as const) {
      await store.attempted(delivery(id, at), "dead", { httpStatus: 500 });
    }
    // The three newest records expire (their index entries are recent: no transition drops them).
    for (const id of ["whd_new1", "whd_new2", "whd_new3"]) await redis.del(keys.webhookDelivery(id));
    const page = await store.list("acme", "dead", 2);
    expect(page?.data.map((each) => each.id)).toEqual(["whd_old2", "whd_old1"]);
    expect(page?.has_more).toBe(false);
    expect(await redis.zcard(keys.webhookDeliveryIndex("acme", "dead"))).toBe(2);
  });

  it("keep a record through the longest wait between attempts", () => {
    expect(deliveryRetentionSeconds(3600, [5000, 7_200_000])).toBe(10_800);
    expect(deliveryRetentionSeconds(604_800, [5000, 7_200_000])).toBe(604_800);
  });
});
