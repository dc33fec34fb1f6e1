/**
 * Alert webhooks go to the operators' own receivers, which are often internal (an Alertmanager
 * bridge, a chat relay inside the VPC): `alerts.webhook_urls` is the operators' config, not a
 * tenant's input, so the private-network refusal (the SSRF guard, which `allow_private_networks`
 * turns off for everyone) does not apply to it. With allow_private_networks false an alert to
 * 127.0.0.1 went straight to the dead list, with a warn line per delivery, and the only way to
 * deliver it was to open tenants' webhooks to the private network too (black-box audit). A
 * tenant's job webhook to the same address is still refused.
 */
import { createKeys } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const alertsSecret = `whsec_${Buffer.from("alerts-internal-secret-0123456789").toString("base64")}`;

describe("an alert webhook to an internal address", () => {
  let stack: Stack;
  let sink: WebhookSink;
  beforeAll(async () => {
    sink = await startWebhookSink();
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      alertIntervalMs: 150,
      env: { OPS_KEYS: "ops-key", ALERTS_SECRET: alertsSecret },
      config: {
        providers: { spare: { type: "simulated", simulate: { latency_ms: 0 } } },
        models: { fast: { provider: "spare" } },
        routes: { default: { chain: [{ model: "fast" }] } },
        tenants: { ops: { api_keys_env: "OPS_KEYS", admin: true } },
        webhooks: { allow_private_networks: false, max_attempts: 2, retry_schedule_ms: [100] },
        alerts: {
          webhook_urls: [sink.url],
          webhook_secret_env: "ALERTS_SECRET",
          rules: [{ kind: "breaker_open", provider: "spare" }],
        },
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await sink?.close();
  });

  it("is delivered, signed, while a tenant's webhook to it is refused", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    await stack.redis.hset(
      keys.breaker("provider:spare"),
      "state",
      "open",
      "open_until",
      String(Date.now() + 600_000),
    );
    const [request] = await sink.waitForRequests(1, 15_000);
    const event = JSON.parse(request?.body ?? "{}");
    expect(event).toMatchObject({ type: "alert.fired", data: { kind: "breaker_open" } });
    expect(request?.headers["webhook-signature"]).toMatch(/^v1,/);
    const dead = await stack.request("GET", "/v1/webhook-deliveries?status=dead", {
      headers: { authorization: "Bearer ops-key" },
    });
    expect(dead.body.data).toEqual([]);

    const job = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "Hi" }] }, webhook: { url: sink.url } },
      headers: { authorization: "Bearer ops-key" },
    });
    expect(job.status).toBe(400);
    expect(job.body.error.param).toBe("webhook.url");
  }, 30_000);
});
