import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { readEvents } from "../support/sse-client.js";

const config = {
  providers: {
    broken: { type: "simulated", simulate: { error_rate: 1 } },
    fine: { type: "simulated", simulate: { latency_ms: 300 } },
  },
  models: { bad: { provider: "broken" }, good: { provider: "fine" } },
  routes: { default: { chain: [{ model: "bad" }, { model: "good" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" }, b: { api_keys_env: "B_KEYS" } },
};
const a = { authorization: "Bearer key-a" };
const b = { authorization: "Bearer key-b" };
const body = { request: { messages: [{ role: "user", content: "hi" }], max_tokens: 10 } };

describe("GET /v1/jobs/:id/events", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { A_KEYS: "key-a", B_KEYS: "key-b" },
    });
  });
  afterAll(() => stack?.close());

  it("streams status, attempt and done events live, and ends after done", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
    const { status, headers, events } = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, {
      headers: a,
    });
    expect(status).toBe(200);
    expect(headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(events.map((event) => [event.event, event.data.status ?? event.data.outcome ?? null])).toEqual([
      ["status", "queued"],
      ["status", "running"],
      ["attempt", "error"],
      ["attempt", "success"],
      ["status", "succeeded"],
      ["done", "succeeded"],
    ]);
    expect(events.map((event) => event.id)).toEqual(["1", "2", "3", "4", "5", "6"]);
    expect(events[2]?.data).toMatchObject({ model: "bad", reason: "server_error" });
    const done = events[5]?.data;
    const polled = await stack.request("GET", `/v1/jobs/${created.body.id}`, { headers: a });
    expect(done).toEqual(polled.body);
  });

  it("resumes after Last-Event-ID", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
    await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: a });
    const { events } = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, {
      headers: { ...a, "last-event-id": "3" },
    });
    expect(events.map((event) => event.id)).toEqual(["4", "5", "6"]);
    expect(events[2]?.event).toBe("done");
  });

  it("is a 404 for another tenant's job", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
    const other = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, { headers: b });
    expect(other.status).toBe(404);
  });
});
