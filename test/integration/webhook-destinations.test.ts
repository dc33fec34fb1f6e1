/**
 * One tenant's hanging webhook receiver no longer delays every other tenant's webhooks: the
 * webhooks queue is one line served by 100 slots per worker process, and each hanging delivery
 * held its slot for the whole timeout, so another tenant's delivery (and the operators' alerts,
 * which share the queue) waited behind all of them, ~timeout × (hanging ahead / 100) (black-box
 * audit: 9.8 s behind 120 hanging jobs). A destination now takes at most a quarter of a process's
 * slots; its deliveries past that go back to the queue for a moment, no attempt counted.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const secret = (label: string) =>
  `whsec_${Buffer.from(`cascade-test-${label}-secret-0123456789`).toString("base64")}`;
const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS", webhook_secret_env: "ACME_WEBHOOK_SECRET" },
    globex: { api_keys_env: "GLOBEX_KEYS", webhook_secret_env: "GLOBEX_WEBHOOK_SECRET" },
  },
  webhooks: { allow_private_networks: true, max_attempts: 3, retry_schedule_ms: [100, 1100] },
};
const hello = { request: { messages: [{ role: "user", content: "Hello" }], max_tokens: 5 } };
const TIMEOUT_MS = 2000;
const HANGING = 250;

describe("webhook isolation between tenants", () => {
  let stack: Stack;
  let hanging: WebhookSink;
  let healthy: WebhookSink;
  beforeAll(async () => {
    hanging = await startWebhookSink({ default: { hang: true } });
    healthy = await startWebhookSink();
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: {
        ACME_KEYS: "acme-key",
        GLOBEX_KEYS: "globex-key",
        ACME_WEBHOOK_SECRET: secret("acme"),
        GLOBEX_WEBHOOK_SECRET: secret("globex"),
      },
      concurrency: 20,
      webhooks: { timeoutMs: TIMEOUT_MS },
    });
  });
  afterAll(async () => {
    await hanging?.close();
    await healthy?.close();
    await stack?.close();
  });

  it("delivers acme's webhook promptly while globex's receiver hangs", async () => {
    // globex: many jobs whose receiver never answers.
    for (let sent = 0; sent < HANGING; sent += 50) {
      await Promise.all(
        Array.from({ length: 50 }, () =>
          stack.request("POST", "/v1/jobs", {
            body: { ...hello, webhook: { url: hanging.url } },
            headers: { authorization: "Bearer globex-key" },
          }),
        ),
      );
    }
    // The hanging receiver's share of the slots is held, and its deliveries past that are going round.
    await hanging.waitForRequests(25, 20_000);
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, webhook: { url: healthy.url } },
      headers: { authorization: "Bearer acme-key" },
    });
    expect(created.status).toBe(202);
    const job = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, {
      headers: { authorization: "Bearer acme-key" },
    });
    expect(job.body.status).toBe("succeeded");
    const endedAt = Date.now();
    const [request] = await healthy.waitForRequests(1, 30_000);
    const delayMs = (request?.receivedAt ?? Date.now()) - endedAt;
    // Not behind globex's timeouts (seen before: ~2 × TIMEOUT_MS).
    expect(delayMs).toBeLessThan(TIMEOUT_MS / 2);
  }, 60_000);

  it("counts no attempt for a delivery handed back: each delivery past the share still makes its 3 attempts", async () => {
    // 30 deliveries to another hanging receiver: 25 at a time, 5 handed back each round.
    const second = await startWebhookSink({ default: { hang: true } });
    try {
      const ids = await Promise.all(
        Array.from({ length: 30 }, async () => {
          const created = await stack.request("POST", "/v1/jobs", {
            body: { ...hello, webhook: { url: second.url } },
            headers: { authorization: "Bearer acme-key" },
          });
          return created.body.id as string;
        }),
      );
      const deadline = Date.now() + 40_000;
      let dead: Array<{ job_id: string; attempts: number }> = [];
      while (Date.now() < deadline) {
        const listed = await stack.request("GET", "/v1/webhook-deliveries?status=dead&limit=100", {
          headers: { authorization: "Bearer acme-key" },
        });
        dead = listed.body.data.filter((each: { job_id: string }) => ids.includes(each.job_id));
        if (dead.length === ids.length) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(dead).toHaveLength(ids.length);
      for (const delivery of dead) expect(delivery.attempts).toBe(3);
      expect(second.requests).toHaveLength(3 * ids.length);
    } finally {
      await second.close();
    }
  }, 60_000);
});
