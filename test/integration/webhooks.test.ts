import { Job } from "bullmq";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type SinkRequest, startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const secret = (label: string) =>
  `whsec_${Buffer.from(`cascade-test-${label}-secret-0123456789`).toString("base64")}`;
const acmeSecret = secret("acme");
const rotorOld = secret("rotor-old");
const rotorNew = secret("rotor-new");

const config = {
  providers: {
    sim: { type: "simulated", simulate: { latency_ms: 0 } },
    broken: { type: "simulated", simulate: { latency_ms: 0, error_rate: 1 } },
  },
  models: { fast: { provider: "sim" }, flaky: { provider: "broken" } },
  routes: { default: { chain: [{ model: "fast" }] }, doomed: { chain: [{ model: "flaky" }] } },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS", webhook_secret_env: "ACME_WEBHOOK_SECRET" },
    globex: { api_keys_env: "GLOBEX_KEYS", webhook_secret_env: "GLOBEX_WEBHOOK_SECRET" },
    rotor: { api_keys_env: "ROTOR_KEYS", webhook_secret_env: "ROTOR_WEBHOOK_SECRET" },
  },
  // The sink listens on loopback. Retries after 100 ms, then every 1.1 s (so timestamps move on).
  webhooks: { allow_private_networks: true, max_attempts: 3, retry_schedule_ms: [100, 1100] },
};

const acme = { authorization: "Bearer acme-key" };
const globex = { authorization: "Bearer globex-key" };
const rotor = { authorization: "Bearer rotor-key" };
const hello = { request: { messages: [{ role: "user", content: "Hello" }], max_tokens: 20 } };
const TIMEOUT_MS = 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const headersOf = (request: SinkRequest) => ({
  "webhook-id": request.headers["webhook-id"] ?? "",
  "webhook-timestamp": request.headers["webhook-timestamp"] ?? "",
  "webhook-signature": request.headers["webhook-signature"] ?? "",
});

describe("webhooks", () => {
  let stack: Stack;
  const sinks: WebhookSink[] = [];
  const newSink = async () => {
    const sink = await startWebhookSink();
    sinks.push(sink);
    return sink;
  };

  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: {
        ACME_KEYS: "acme-key",
        GLOBEX_KEYS: "globex-key",
        ROTOR_KEYS: "rotor-key",
        ACME_WEBHOOK_SECRET: acmeSecret,
        GLOBEX_WEBHOOK_SECRET: secret("globex"),
        ROTOR_WEBHOOK_SECRET: `${rotorOld} ${rotorNew}`,
      },
      webhooks: { timeoutMs: TIMEOUT_MS },
    });
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((sink) => sink.close()));
  });
  afterAll(() => stack?.close());

  async function submit(url: string, headers = acme, extra: Record<string, unknown> = {}): Promise<string> {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, ...extra, webhook: { url } },
      headers,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    return created.body.id;
  }

  /** The tenant's delivery for `jobId` once it has reached `status`. */
  async function deliveryOf(jobId: string, status: string, headers = acme) {
    return waitFor(async () => {
      const list = await stack.request("GET", `/v1/webhook-deliveries?status=${status}`, { headers });
      expect(list.status).toBe(200);
      // biome-ignore lint/suspicious/noExplicitAny: list items are checked field by field below.
      return list.body.data.find((delivery: any) => delivery.job_id === jobId);
    }, `delivery of ${jobId} to be ${status}`);
  }

  it("delivers job.succeeded whose data equals GET /v1/jobs/:id, signed per Standard Webhooks", async () => {
    const sink = await newSink();
    const jobId = await submit(sink.url);
    const [request] = await sink.waitForRequests(1);
    if (!request) throw new Error("no request");
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/hook");
    expect(request.headers["content-type"]).toBe("application/json");
    const event = JSON.parse(request.body);
    expect(event.type).toBe("job.succeeded");
    expect(new Date(event.timestamp).toISOString()).toBe(event.timestamp);
    const job = await stack.request("GET", `/v1/jobs/${jobId}?wait=5`, { headers: acme });
    expect(job.body.status).toBe("succeeded");
    expect(event.data).toEqual(job.body);

    const headers = headersOf(request);
    expect(headers["webhook-id"]).toMatch(/^msg_/);
    expect(Math.abs(Number(headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(10);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    // What a receiver does: verify the raw body with the tenant's secret.
    expect(new Webhook(acmeSecret).verify(request.body, headers)).toEqual(event);
    expect(() => new Webhook(secret("someone-else")).verify(request.body, headers)).toThrow();
    expect(() => new Webhook(acmeSecret).verify(request.body.replace("Hello", "Hellx"), headers)).toThrow();

    const delivery = await deliveryOf(jobId, "delivered");
    expect(delivery).toMatchObject({
      id: expect.stringMatching(/^whd_/),
      job_id: jobId,
      url: sink.url,
      event_type: "job.succeeded",
      status: "delivered",
      attempts: 1,
      last_status: 200,
      last_error: null,
      webhook_id: headers["webhook-id"],
    });
    expect(delivery.created_at).toBeTypeOf("number");
  });

  it("signs with both secrets during a rotation; each verifies on its own", async () => {
    const sink = await newSink();
    await submit(sink.url, rotor);
    const [request] = await sink.waitForRequests(1);
    if (!request) throw new Error("no request");
    const headers = headersOf(request);
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
    expect(() => new Webhook(rotorOld).verify(request.body, headers)).not.toThrow();
    expect(() => new Webhook(rotorNew).verify(request.body, headers)).not.toThrow();
    expect(() => new Webhook(acmeSecret).verify(request.body, headers)).toThrow();
  });

  it("delivers job.failed for a job that fails", async () => {
    const sink = await newSink();
    const jobId = await submit(sink.url, acme, { route: "doomed" });
    const [request] = await sink.waitForRequests(1);
    const event = JSON.parse(request?.body ?? "{}");
    expect(event.type).toBe("job.failed");
    const job = await stack.request("GET", `/v1/jobs/${jobId}?wait=5`, { headers: acme });
    expect(job.body.status).toBe("failed");
    expect(event.data).toEqual(job.body);
    expect(event.data.error.type).toBe("all_models_failed");
  });

  it("retries a 500 with the same webhook-id and a fresh timestamp per attempt until a 2xx", async () => {
    const sink = await newSink();
    sink.respondWith(500, 500, 200);
    const jobId = await submit(sink.url);
    const requests = await sink.waitForRequests(3);
    const ids = new Set(requests.map((request) => request.headers["webhook-id"]));
    expect(ids.size).toBe(1);
    const timestamps = requests.map((request) => Number(request.headers["webhook-timestamp"]));
    expect(timestamps[1]).toBeGreaterThanOrEqual(timestamps[0] ?? 0);
    expect(timestamps[2]).toBeGreaterThan(timestamps[1] ?? 0);
    for (const request of requests) {
      // The body is the same bytes every time; each attempt's own signature verifies.
      expect(request.body).toBe(requests[0]?.body);
      expect(Math.abs(Number(request.headers["webhook-timestamp"]) - request.receivedAt / 1000)).toBeLessThan(
        2,
      );
      expect(() => new Webhook(acmeSecret).verify(request.body, headersOf(request))).not.toThrow();
    }
    const delivery = await deliveryOf(jobId, "delivered");
    expect(delivery).toMatchObject({ attempts: 3, last_status: 200, last_error: null });
  });

  it("gives up after max_attempts, lists the dead delivery to its tenant only, and retries it on request", async () => {
    const sink = await newSink();
    sink.setDefault({ status: 500, body: "receiver exploded" });
    const jobId = await submit(sink.url);
    await sink.waitForRequests(3);
    const dead = await deliveryOf(jobId, "dead");
    expect(dead).toMatchObject({
      status: "dead",
      attempts: 3,
      last_status: 500,
      event_type: "job.succeeded",
      url: sink.url,
    });
    expect(dead.last_error).toMatch(/HTTP 500: receiver exploded/);
    await sleep(1500);
    expect(sink.requests).toHaveLength(3);

    const listed = await stack.request("GET", "/v1/webhook-deliveries?status=dead", { headers: acme });
    expect(listed.body.object).toBe("list");
    for (const delivery of listed.body.data) expect(delivery.status).toBe("dead");
    const others = await stack.request("GET", "/v1/webhook-deliveries?status=dead", { headers: globex });
    expect(others.body).toEqual({ object: "list", data: [], first_id: null, last_id: null, has_more: false });
    const othersAll = await stack.request("GET", "/v1/webhook-deliveries", { headers: globex });
    expect(othersAll.body.data).toEqual([]);
    const stolen = await stack.request("POST", `/v1/webhook-deliveries/${dead.id}/retry`, {
      headers: globex,
    });
    expect(stolen.status).toBe(404);

    // Redis did not answer the retry's read: 503 with Retry-After (not a 409). The record is left
    // pending (the retry might have run); its job is still failed, so the next retry repairs it.
    const fromId = vi.spyOn(Job, "fromId").mockRejectedValueOnce(new Error("Command timed out"));
    try {
      const unanswered = await stack.request("POST", `/v1/webhook-deliveries/${dead.id}/retry`, {
        headers: acme,
      });
      expect(unanswered.status).toBe(503);
      expect(unanswered.body.error.type).toBe("service_unavailable_error");
      expect(unanswered.headers.get("retry-after")).toMatch(/^\d+$/);
    } finally {
      fromId.mockRestore();
    }
    expect((await deliveryOf(jobId, "pending")).status).toBe("pending");

    sink.setDefault(200);
    const retried = await stack.request("POST", `/v1/webhook-deliveries/${dead.id}/retry`, { headers: acme });
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ id: dead.id, status: "pending", webhook_id: dead.webhook_id });
    const requests = await sink.waitForRequests(4);
    expect(requests[3]?.headers["webhook-id"]).toBe(dead.webhook_id);
    expect(() =>
      new Webhook(acmeSecret).verify(requests[3]?.body ?? "", headersOf(requests[3] as SinkRequest)),
    ).not.toThrow();
    const delivered = await deliveryOf(jobId, "delivered");
    expect(delivered).toMatchObject({ id: dead.id, attempts: 4, last_status: 200, last_error: null });
    const deadNow = await stack.request("GET", "/v1/webhook-deliveries?status=dead", { headers: acme });
    // biome-ignore lint/suspicious/noExplicitAny: list items
    expect(deadNow.body.data.some((delivery: any) => delivery.id === dead.id)).toBe(false);

    const again = await stack.request("POST", `/v1/webhook-deliveries/${dead.id}/retry`, { headers: acme });
    expect(again.status).toBe(409);
    expect(again.body.error.type).toBe("conflict_error");
  });

  it("stops at once on a 410", async () => {
    const sink = await newSink();
    sink.setDefault(410);
    const jobId = await submit(sink.url);
    const dead = await deliveryOf(jobId, "dead");
    expect(dead).toMatchObject({ attempts: 1, last_status: 410 });
    expect(dead.last_error).toMatch(/410/);
    await sleep(400);
    expect(sink.requests).toHaveLength(1);
  });

  it("does not follow a redirect: the target never hears of it", async () => {
    const target = await newSink();
    const sink = await newSink();
    sink.setDefault({ status: 302, redirectTo: target.url });
    const jobId = await submit(sink.url);
    const dead = await deliveryOf(jobId, "dead");
    expect(dead).toMatchObject({ attempts: 3, last_status: 302 });
    expect(dead.last_error).toMatch(/redirect to http:\/\/127\.0\.0\.1:\d+\/hook not followed/);
    expect(sink.requests).toHaveLength(3);
    expect(target.requests).toHaveLength(0);
    expect(target.connections).toBe(0);
  });

  it("times out a receiver that never answers", async () => {
    const sink = await newSink();
    sink.setDefault({ hang: true });
    const started = Date.now();
    const jobId = await submit(sink.url);
    const dead = await deliveryOf(jobId, "dead");
    expect(dead).toMatchObject({
      attempts: 3,
      last_status: null,
      last_error: `timed out after ${TIMEOUT_MS} ms`,
    });
    expect(sink.requests).toHaveLength(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * TIMEOUT_MS);
  });

  it("validates the list query", async () => {
    const bad = await stack.request("GET", "/v1/webhook-deliveries?status=lost", { headers: acme });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: "invalid_request_error", param: "status" });
    const tooMany = await stack.request("GET", "/v1/webhook-deliveries?limit=1001", { headers: acme });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.param).toBe("limit");
    const one = await stack.request("GET", "/v1/webhook-deliveries?limit=1", { headers: acme });
    expect(one.status).toBe(200);
    expect(one.body.data.length).toBeLessThanOrEqual(1);
    const unknown = await stack.request("POST", "/v1/webhook-deliveries/whd_nope/retry", { headers: acme });
    expect(unknown.status).toBe(404);
    expect((await stack.request("GET", "/v1/webhook-deliveries")).status).toBe(401);
  });
});

describe("webhooks of jobs cancelled while queued (open mode: unsigned)", () => {
  let stack: Stack;
  let sink: WebhookSink;
  beforeAll(async () => {
    sink = await startWebhookSink();
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config: { ...config, tenants: undefined },
      withoutWorker: true,
    });
  });
  afterAll(async () => {
    await stack?.close();
    await sink?.close();
  });

  it("sends job.cancelled with the cancelled job object, without a signature", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, webhook: { url: sink.url } },
    });
    expect(created.status).toBe(202);
    const cancelled = await stack.request("DELETE", `/v1/jobs/${created.body.id}`);
    expect(cancelled.status).toBe(200);
    const [request] = await sink.waitForRequests(1);
    const event = JSON.parse(request?.body ?? "{}");
    expect(event.type).toBe("job.cancelled");
    const job = await stack.request("GET", `/v1/jobs/${created.body.id}`);
    expect(job.body.status).toBe("cancelled");
    expect(event.data).toEqual(job.body);
    expect(request?.headers["webhook-id"]).toMatch(/^msg_/);
    expect(request?.headers["webhook-timestamp"]).toMatch(/^\d+$/);
    expect(request?.headers["webhook-signature"]).toBeUndefined();
  });
});
