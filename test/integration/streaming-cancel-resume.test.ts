/**
 * The events of a streaming job cancelled while queued keep their ids after the cancel: `0-1` for
 * `queued`, then the made-up ending `<ms>-999998` / `<ms>-999999`. The cancel removes the BullMQ
 * job; its cancelled record says it streams, so the same job's events are not numbered again from
 * its state (`1`, `2`, `3`), and a client resuming with the Last-Event-ID it was given (EventSource
 * does on any reconnect) is not sent `queued` and `cancelled` again.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { readEvents } from "../support/sse-client.js";

const config = {
  providers: { fine: { type: "simulated", simulate: { latency_ms: 300 } } },
  models: { good: { provider: "fine" } },
  routes: { default: { chain: [{ model: "good" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" } },
};
const a = { authorization: "Bearer key-a" };
const streamed = { request: { messages: [{ role: "user", content: "hi" }], max_tokens: 10, stream: true } };

describe("events of a streaming job cancelled while queued, resumed by Last-Event-ID", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { A_KEYS: "key-a" },
      withoutWorker: true,
    });
  });
  afterAll(() => stack?.close());

  it("a client that had `queued` (id 0-1) before the cancel is not sent `queued` again", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    const first = await readEvents(url, { headers: a, until: () => true });
    expect(first.events.map((event) => [event.id, event.event])).toEqual([["0-1", "status"]]);

    expect((await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: a })).status).toBe(200);

    const resumed = await readEvents(url, { headers: { ...a, "last-event-id": "0-1" }, timeoutMs: 5_000 });
    // Only what came after 0-1 (it was `1 status queued`, `2 status cancelled`, `3 done`).
    expect(resumed.events.map((event) => [event.event, event.data.status])).toEqual([
      ["status", "cancelled"],
      ["done", "cancelled"],
    ]);
  });

  it("a client that was live through the cancel and lost the connection before `done` gets only `done`", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    const live = readEvents(url, {
      headers: a,
      timeoutMs: 5_000,
      // Drops the connection right after the cancelled status, before done.
      until: (event) => event.event === "status" && event.data.status === "cancelled",
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: a })).status).toBe(200);
    const seen = (await live).events;
    expect(seen.map((event) => event.event)).toEqual(["status", "status"]);
    const lastId = String(seen.at(-1)?.id);
    expect(lastId).toMatch(/^\d+-999998$/);

    const resumed = await readEvents(url, { headers: { ...a, "last-event-id": lastId }, timeoutMs: 5_000 });
    // `done` alone (it was queued, cancelled and done again, under new ids 1, 2, 3).
    expect(resumed.events.map((event) => event.event)).toEqual(["done"]);
  });

  it("the same job's events keep their ids: a reader after the cancel sees the ids a live reader saw", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    const live = readEvents(url, { headers: a, timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: a });
    const liveIds = (await live).events.map((event) => event.id);
    const later = await readEvents(url, { headers: a, timeoutMs: 5_000 });
    expect(later.events.map((event) => event.id)).toEqual(liveIds);
  });
});
