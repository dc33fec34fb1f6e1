/**
 * An alert's webhooks are queued at least once: the transition and its place in the outbox are
 * one Redis change, and each evaluation queues what the outbox holds. Before, a webhook whose
 * queueing failed (a Redis blip, the process dying between the two) was lost for good: the alert
 * had fired and would not fire again (black-box audit). Real Redis; the queue's `add` fails once.
 */
import {
  AlertEvaluator,
  budgetPeriods,
  createKeys,
  loadConfig,
  type WebhookJobData,
  type WebhookQueue,
} from "@cascade/shared";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { uniquePrefix } from "../support/cascade-stack.js";
import { testRedis } from "../support/redis-clients.js";

const redis = testRedis(undefined, { maxRetriesPerRequest: 1 });
afterAll(() => redis.disconnect());

describe("alert webhooks", () => {
  it("are queued by a later evaluation when queueing failed, each once, with the transition's time", async () => {
    const prefix = uniquePrefix("alerts-outbox");
    const config = loadConfig(
      { CASCADE_REDIS_PREFIX: prefix, OPS_KEYS: "ops-key", ALERTS_SECRET: `whsec_${"a".repeat(32)}` },
      {
        raw: {
          providers: { sim: { type: "simulated" } },
          models: { fast: { provider: "sim" } },
          routes: { default: { chain: [{ model: "fast" }] } },
          tenants: { ops: { api_keys_env: "OPS_KEYS", budget: { daily_usd: 10 } } },
          alerts: {
            webhook_urls: ["https://ops.example.com/a", "https://ops.example.com/b"],
            webhook_secret_env: "ALERTS_SECRET",
            rules: [{ kind: "budget_used", tenant: "ops" }],
          },
        },
      },
    );
    const keys = createKeys(prefix);
    const added: Array<{ id: string; data: WebhookJobData }> = [];
    let failures = 1;
    const webhookQueue = {
      async add(_name: string, data: WebhookJobData, options: { jobId?: string }) {
        if (failures > 0) {
          failures -= 1;
          throw new Error("Connection is closed.");
        }
        // As BullMQ: a second add of the same job id keeps the first.
        if (!added.some((each) => each.id === options.jobId)) added.push({ id: options.jobId ?? "", data });
        return {};
      },
    } as unknown as WebhookQueue;
    const evaluator = new AlertEvaluator({
      config,
      redis,
      keys,
      logger: pino({ level: "silent" }),
      webhookQueue,
    });
    await redis.hset(keys.usage("ops", budgetPeriods(Date.now()).dayDate), "total", "9");
    await evaluator.tick();
    // Fired, and one of its two webhooks failed to queue: the transition is kept.
    expect(added.length).toBeLessThan(2);
    expect(await redis.llen(keys.alertsOutbox)).toBe(1);
    // The next evaluation queues both again: the one queued before keeps its id (one delivery).
    await evaluator.tick();
    expect(added.map((each) => each.data.url).sort()).toEqual([
      "https://ops.example.com/a",
      "https://ops.example.com/b",
    ]);
    expect(added.map((each) => each.data.event_type)).toEqual(["alert.fired", "alert.fired"]);
    expect(new Set(added.map((each) => each.data.webhook_id)).size).toBe(1);
    expect(await redis.llen(keys.alertsOutbox)).toBe(0);
    // Nothing left to queue.
    await evaluator.tick();
    expect(added).toHaveLength(2);
    const body = JSON.parse(added[0]?.data.body ?? "{}");
    expect(body).toMatchObject({ type: "alert.fired", data: { id: "budget_used:ops", state: "firing" } });
    expect(Math.abs(Date.parse(body.timestamp) - Date.now())).toBeLessThan(10_000);
    // A transition whose webhooks could not be queued for over an hour is dropped, not sent late.
    const stale = {
      type: "alert.fired",
      at_ms: Date.now() - 2 * 3_600_000,
      alert: { id: "queue_age:completions", rule: "queue_age:completions", kind: "queue_age" },
    };
    await redis.rpush(keys.alertsOutbox, JSON.stringify(stale));
    await evaluator.tick();
    expect(added).toHaveLength(2);
    expect(await redis.llen(keys.alertsOutbox)).toBe(0);
    await evaluator.stop();
  });
});
