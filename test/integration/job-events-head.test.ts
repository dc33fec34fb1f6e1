/**
 * HEAD /v1/jobs/:id/events (Fastify answers HEAD for every GET route) answers at once with the
 * GET's status and headers and no body: run as the GET, it was held open until the job ended, so
 * a HEAD on a queued job (a proxy's or monitor's check that the stream exists) hung as long as the
 * job waited.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { fine: { type: "simulated", simulate: { latency_ms: 10 } } },
  models: { good: { provider: "fine" } },
  routes: { default: { chain: [{ model: "good" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" }, b: { api_keys_env: "B_KEYS" } },
};
const a = { authorization: "Bearer key-a" };
const body = { request: { messages: [{ role: "user", content: "hi" }], max_tokens: 10 } };

describe("HEAD on a job's events", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { A_KEYS: "key-a", B_KEYS: "key-b" },
      withoutWorker: true,
    });
  });
  afterAll(() => stack?.close());

  it("answers at once for a queued job, as HEAD on the job itself does", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
    const job = await fetch(`${stack.url}/v1/jobs/${created.body.id}`, { method: "HEAD", headers: a });
    expect(job.status).toBe(200);
    const started = Date.now();
    const events = await fetch(`${stack.url}/v1/jobs/${created.body.id}/events`, {
      method: "HEAD",
      headers: a,
      signal: AbortSignal.timeout(5_000),
    }).then(
      (response) => ({ status: response.status, contentType: response.headers.get("content-type") }),
      (error: Error) => ({
        status: `no answer after ${Date.now() - started} ms (${error.name})`,
        contentType: null,
      }),
    );
    // It was { status: "no answer after 5000 ms (TimeoutError)" }.
    expect(events).toEqual({ status: 200, contentType: "text/event-stream; charset=utf-8" });
    // Still behind the tenant's key, as the GET is.
    const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
    expect((await fetch(url, { method: "HEAD" })).status).toBe(401);
    expect((await fetch(url, { method: "HEAD", headers: { authorization: "Bearer key-b" } })).status).toBe(
      404,
    );
  });
});
