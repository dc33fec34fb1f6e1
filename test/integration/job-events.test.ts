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
const startEventsStack = (withoutWorker = false) =>
  startStack({
    redisUrl: inject("redisUrl"),
    config,
    env: { A_KEYS: "key-a", B_KEYS: "key-b" },
    withoutWorker,
  });

describe("GET /v1/jobs/:id/events", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startEventsStack();
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

  it("a streaming job resumed after its done event ends at once, with nothing sent again", async () => {
    const streamed = { request: { ...body.request, stream: true }, models: ["good"] };
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    const first = await readEvents(url, { headers: a });
    const done = first.events.at(-1);
    expect(done?.event).toBe("done");
    const again = await readEvents(url, {
      headers: { ...a, "last-event-id": String(done?.id) },
      timeoutMs: 5_000,
    });
    expect(again.events).toEqual([]);
    expect(again.ended, "the server ended the response").toBe(true);
    // 204: an EventSource that did not close on done stops reconnecting.
    expect(again.status).toBe(204);
  });

  it("a job resumed after its done event (events from its state) answers 204, so EventSource stops", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
    await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: a });
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    const again = await readEvents(url, { headers: { ...a, "last-event-id": "6" }, timeoutMs: 5_000 });
    expect(again.status).toBe(204);
    expect(again.events).toEqual([]);
    // One event short of the end: the rest is sent.
    const short = await readEvents(url, { headers: { ...a, "last-event-id": "5" }, timeoutMs: 5_000 });
    expect(short.status).toBe(200);
    expect(short.events.map((event) => event.event)).toEqual(["done"]);
  });

  it("takes a Last-Event-ID past 64 bits as none: the stream from the start, ending with done", async () => {
    const streamed = { request: { ...body.request, stream: true }, models: ["good"] };
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: a });
    const { events } = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, {
      headers: { ...a, "last-event-id": "99999999999999999999-0" },
      timeoutMs: 5_000,
    });
    expect(events[0]?.data).toEqual({ status: "queued" });
    expect(events.at(-1)?.event).toBe("done");
  });

  it("is a 404 for another tenant's job", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
    const other = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, { headers: b });
    expect(other.status).toBe(404);
  });
});

describe("GET /v1/jobs/:id/events for a streaming job that ends without its worker", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startEventsStack(true);
  });
  afterAll(() => stack?.close());

  it("sends the done it makes up from the job's state once: a resume after it ends at once", async () => {
    const streamed = { request: { ...body.request, stream: true } };
    const created = await stack.request("POST", "/v1/jobs", { body: streamed, headers: a });
    expect((await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: a })).status).toBe(200);
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    const first = await readEvents(url, { headers: a });
    expect(first.events.map((event) => event.event)).toEqual(["status", "status", "done"]);
    const done = first.events.at(-1);
    expect(done?.data.status).toBe("cancelled");
    const again = await readEvents(url, {
      headers: { ...a, "last-event-id": String(done?.id) },
      timeoutMs: 5_000,
    });
    expect(again.events).toEqual([]);
    expect(again.ended, "the server ended the response").toBe(true);
    expect(again.status).toBe(204);
  });
});
