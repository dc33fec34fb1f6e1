/**
 * GET /v1/webhook-deliveries pages as OpenAI's lists do (`after`, `first_id`, `last_id`,
 * `has_more`): a backlog of dead deliveries larger than one page was out of reach past its
 * newest 1,000. Deliveries made in the same second (their index's score) are passed over by id.
 * The store on the run's real Redis, then the route over HTTP.
 */
import { createKeys, WebhookDeliveryStore, type WebhookJobData } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack, uniquePrefix } from "../support/cascade-stack.js";
import { testRedis } from "../support/redis-clients.js";

const redis = testRedis(undefined, { maxRetriesPerRequest: 1 });
afterAll(() => redis.disconnect());

function delivery(tenant: string, index: number, createdAt: number): WebhookJobData {
  const suffix = `page${String(index).padStart(3, "0")}`;
  return {
    v: 1,
    delivery_id: `whd_${suffix}`,
    webhook_id: `msg_${suffix}`,
    tenant,
    job_id: `job_${suffix}`,
    url: "https://example.com/hook",
    event_type: "job.succeeded",
    created_at: createdAt,
    body: "{}",
  };
}

describe("webhook delivery pages", () => {
  it("walks every dead delivery with after, ties within a second included, each once", async () => {
    const store = new WebhookDeliveryStore(redis, createKeys(uniquePrefix("whd-pages")), 3600);
    const now = Math.floor(Date.now() / 1000);
    // 11 dead deliveries over 4 seconds (ties in each), 2 delivered ones, another tenant's.
    for (let index = 0; index < 11; index++) {
      await store.attempted(delivery("acme", index, now - (index % 4)), "dead", { httpStatus: 500 });
    }
    for (const index of [20, 21])
      await store.attempted(delivery("acme", index, now), "delivered", { httpStatus: 200 });
    await store.attempted(delivery("globex", 30, now), "dead", { httpStatus: 500 });

    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const listed = await store.list("acme", "dead", 3, after);
      if (!listed) throw new Error("cursor refused");
      seen.push(...listed.data.map((each) => each.id));
      for (const each of listed.data) expect(each.status).toBe("dead");
      if (!listed.has_more) break;
      expect(listed.data).toHaveLength(3);
      after = listed.data.at(-1)?.id;
    }
    expect(seen).toHaveLength(11);
    expect(new Set(seen).size).toBe(11);
    // Newest first: by second, then by id.
    const expected = Array.from({ length: 11 }, (_, index) => ({
      id: `whd_page${String(index).padStart(3, "0")}`,
      at: now - (index % 4),
    }))
      .sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1))
      .map((each) => each.id);
    expect(seen).toEqual(expected);

    expect(await store.list("acme", undefined, 20)).toMatchObject({ has_more: false });
    expect((await store.list("acme", undefined, 20))?.data).toHaveLength(13);
    // Another tenant's id is no cursor here.
    expect(await store.list("acme", "dead", 3, "whd_page030")).toBeUndefined();
  });
});

describe("GET /v1/webhook-deliveries pages", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      withoutWorker: true,
      config: {
        providers: { sim: { type: "simulated" } },
        models: { m: { provider: "sim" } },
        routes: { default: { chain: [{ model: "m" }] } },
      },
    });
  });
  afterAll(() => stack?.close());

  it("answers OpenAI's list shape, and a 400 naming after for an unknown cursor", async () => {
    const first = await stack.request("GET", "/v1/webhook-deliveries?status=dead&limit=2");
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ object: "list", data: [], first_id: null, last_id: null, has_more: false });
    const unknown = await stack.request("GET", "/v1/webhook-deliveries?after=whd_nope");
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ type: "invalid_request_error", param: "after" });
  });
});
