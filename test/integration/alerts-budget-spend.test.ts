/**
 * budget_used measures what the tenant has spent (its usage records: settled costs), not its
 * budget keys, which also hold what calls in flight reserved at their estimate (max_tokens of
 * output) and what processes hold on lease: one call with max_tokens 700 that cost $0.021 fired
 * the alert at 0.71 while it ran and resolved it when it settled (black-box audit). The month's
 * figure adds up the month's days.
 */

import { budgetPeriods, createKeys } from "@cascade/shared";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const alertsSecret = `whsec_${Buffer.from("cascade-test-alerts-secret-0123456789").toString("base64")}`;
const acme = { authorization: "Bearer acme-key" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("budget_used alert", () => {
  let stack: Stack;
  let sink: WebhookSink;
  beforeAll(async () => {
    sink = await startWebhookSink();
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      alertIntervalMs: 150,
      env: { ACME_KEYS: "acme-key", MONTHLY_KEYS: "monthly-key", ALERTS_SECRET: alertsSecret },
      config: {
        providers: { sim: { type: "simulated", simulate: { latency_ms: 3000, output_tokens: 10 } } },
        models: { priced: { provider: "sim", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
        routes: { default: { chain: [{ model: "priced" }] } },
        tenants: {
          acme: { api_keys_env: "ACME_KEYS", admin: true, budget: { daily_usd: 1 } },
          monthly: { api_keys_env: "MONTHLY_KEYS", budget: { monthly_usd: 10 } },
        },
        webhooks: { allow_private_networks: true },
        alerts: {
          webhook_urls: [sink.url],
          webhook_secret_env: "ALERTS_SECRET",
          rules: [
            { kind: "budget_used", tenant: "acme", fire_above: 0.5, resolve_below: 0.4 },
            { kind: "budget_used", tenant: "monthly", fire_above: 0.5, resolve_below: 0.4 },
          ],
        },
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await sink?.close();
  });

  it("does not fire on a reservation the call never spends", async () => {
    // Estimate: (ceil(2/4) + 10) prompt tokens + 700 max_tokens at $0.001 each ≈ $0.71 reserved;
    // the call answers 10 tokens: ≈ $0.021 spent.
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "Hi" }], max_tokens: 700 } },
      headers: acme,
    });
    expect(created.status).toBe(202);
    const job = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, { headers: acme });
    expect(job.body.status).toBe("succeeded");
    expect(job.body.cost_usd).toBeLessThan(0.05);
    await sleep(1000);
    const usage = await stack.request("GET", "/v1/usage", { headers: acme });
    expect(usage.body.cost_usd).toBeLessThan(0.05);
    const events = sink.requests.map((request) =>
      new Webhook(alertsSecret).verify(request.body, {
        "webhook-id": request.headers["webhook-id"] ?? "",
        "webhook-timestamp": request.headers["webhook-timestamp"] ?? "",
        "webhook-signature": request.headers["webhook-signature"] ?? "",
      }),
    ) as Array<{ type: string; data: { id: string; value: number } }>;
    expect(
      events
        .filter((event) => event.data.id === "budget_used:acme")
        .map((event) => `${event.type} ${event.data.id} ${event.data.value}`),
    ).toEqual([]);
  });

  it("adds up the month's days for a monthly budget", async () => {
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    const today = budgetPeriods(Date.now()).dayDate;
    const first = `${today.slice(0, 8)}01`;
    // $3 on the month's first day and $3 today ($6 today when today is the first): 0.6 of $10.
    await stack.redis.hset(keys.usage("monthly", first), "total", "3");
    if (first !== today) await stack.redis.hset(keys.usage("monthly", today), "total", "3");
    else await stack.redis.hset(keys.usage("monthly", today), "total", "6");
    const deadline = Date.now() + 10_000;
    let alerts: Array<{ id: string; value: number }> = [];
    while (Date.now() < deadline) {
      alerts = (await stack.request("GET", "/v1/alerts", { headers: acme })).body.data;
      if (alerts.some((alert) => alert.id === "budget_used:monthly")) break;
      await sleep(100);
    }
    expect(alerts.find((alert) => alert.id === "budget_used:monthly")?.value).toBeCloseTo(0.6, 6);
  });
});
