import {
  AlertEvaluator,
  budgetPeriods,
  ConfigError,
  createKeys,
  loadConfig,
  QUEUE_NAMES,
  type RedisClient,
  type WebhookJobData,
  type WebhookQueue,
} from "@cascade/shared";
import { createQueue } from "@cascade/shared/bullmq";
import { pino } from "pino";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack, uniquePrefix } from "../support/cascade-stack.js";
import { type FakeBehaviour, type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import { testRedis } from "../support/redis-clients.js";
import { type SinkRequest, startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const alertsSecret = `whsec_${Buffer.from("cascade-test-alerts-secret-0123456789").toString("base64")}`;
const ops = { authorization: "Bearer ops-key" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface AlertWebhook {
  type: string;
  timestamp: string;
  data: { id: string; kind: string; subject: string; state: string; value: number; threshold: number };
}

/** Every alert webhook the sink got, each verified with the alerts secret. */
function alertEvents(sink: WebhookSink): AlertWebhook[] {
  return sink.requests.map((request: SinkRequest) => {
    const headers = {
      "webhook-id": request.headers["webhook-id"] ?? "",
      "webhook-timestamp": request.headers["webhook-timestamp"] ?? "",
      "webhook-signature": request.headers["webhook-signature"] ?? "",
    };
    return new Webhook(alertsSecret).verify(request.body, headers) as AlertWebhook;
  });
}

const eventsOf = (sink: WebhookSink, id: string, type?: string) =>
  alertEvents(sink).filter((event) => event.data.id === id && (!type || event.type === type));

describe("alerts", () => {
  let stack: Stack;
  let sink: WebhookSink;
  let upstream: FakeOpenAI;

  beforeAll(async () => {
    [sink, upstream] = await Promise.all([startWebhookSink(), startFakeOpenAI()]);
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      alertIntervalMs: 150,
      env: { UP_KEY: "sk-test", OPS_KEYS: "ops-key", PLAIN_KEYS: "plain-key", ALERTS_SECRET: alertsSecret },
      config: {
        providers: {
          // The breaker never opens on 40% failures: the fallback rate is what is measured.
          up: {
            type: "openai",
            base_url: upstream.url,
            api_key_env: "UP_KEY",
            breaker: { failure_threshold: 1, min_requests: 1000 },
          },
          sim: { type: "simulated", simulate: { latency_ms: 0 } },
          spare: { type: "simulated", simulate: { latency_ms: 0 } },
        },
        models: {
          first: { provider: "up", name: "up-first" },
          second: { provider: "sim" },
          fast: { provider: "sim" },
          "spare-model": { provider: "spare", breaker: { open_ms: 1000 } },
        },
        routes: {
          flaky: { chain: [{ model: "first", max_retries: 0 }, { model: "second" }] },
          default: { chain: [{ model: "fast" }] },
        },
        tenants: {
          ops: { api_keys_env: "OPS_KEYS", admin: true, budget: { daily_usd: 10 } },
          plain: { api_keys_env: "PLAIN_KEYS" },
        },
        webhooks: { allow_private_networks: true, max_attempts: 3, retry_schedule_ms: [100] },
        alerts: {
          webhook_urls: [sink.url],
          webhook_secret_env: "ALERTS_SECRET",
          rules: [
            {
              kind: "fallback_rate",
              route: "flaky",
              window_s: 3,
              min_requests: 20,
              fire_above: 0.2,
              resolve_below: 0.1,
            },
            { kind: "breaker_open", provider: "spare" },
            { kind: "budget_used", tenant: "ops", fire_above: 0.8, resolve_below: 0.7 },
            { kind: "queue_age", fire_above_s: 1, resolve_below_s: 0.5 },
          ],
        },
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([sink?.close(), upstream?.close()]);
  });

  const keys = () => createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
  const chat = (model: string) =>
    stack.request("POST", "/v1/chat/completions", {
      body: { model, messages: [{ role: "user", content: "Hi" }], max_tokens: 5 },
      headers: ops,
    });
  /** One finished request on route flaky: a job (waited for) on even turns, a gateway call on odd ones. */
  let turn = 0;
  const finishOne = async () => {
    turn += 1;
    if (turn % 2 === 0) {
      const response = await chat("flaky");
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      return;
    }
    const created = await stack.request("POST", "/v1/jobs", {
      body: { route: "flaky", request: { messages: [{ role: "user", content: "Hi" }], max_tokens: 5 } },
      headers: ops,
    });
    expect(created.status).toBe(202);
    const job = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: ops });
    expect(job.body.status).toBe("succeeded");
  };
  const listAlerts = async () => {
    const response = await stack.request("GET", "/v1/alerts", { headers: ops });
    expect(response.status).toBe(200);
    // biome-ignore lint/suspicious/noExplicitAny: the list is checked field by field.
    return response.body.data as any[];
  };

  it("fires a route's fallback_rate alert once at a 40% failure rate, and resolves it once when healed", async () => {
    // Two calls in five fail with a 500 (the second model answers): a fallback rate of 0.4.
    const pattern: FakeBehaviour[] = [
      { kind: "server_error" },
      { kind: "ok" },
      { kind: "server_error" },
      { kind: "ok" },
      { kind: "ok" },
    ];
    upstream.script("up-first", ...Array.from({ length: 12 }, () => pattern).flat());
    for (let index = 0; index < 60; index += 1) await finishOne();
    const fired = await waitFor(
      async () => eventsOf(sink, "fallback_rate:flaky", "alert.fired")[0],
      "alert.fired for the route",
    );
    expect(fired.data).toMatchObject({
      kind: "fallback_rate",
      subject: "flaky",
      state: "firing",
      threshold: 0.2,
    });
    expect(fired.data.value).toBeGreaterThan(0.3);
    expect(fired.data.value).toBeLessThan(0.5);
    const active = (await listAlerts()).find((alert) => alert.id === "fallback_rate:flaky");
    expect(active).toMatchObject({ rule: "fallback_rate:flaky", state: "firing", resolved_at: null });
    expect(active.value).toBeGreaterThan(0.3);
    expect(active.fired_at).toBeTypeOf("number");

    // Healed (jobs and gateway calls alike): every call answers on the first model; the failures leave the 3 s window.
    const healedUntil = Date.now() + 15_000;
    while (eventsOf(sink, "fallback_rate:flaky", "alert.resolved").length === 0 && Date.now() < healedUntil) {
      await finishOne();
    }
    const resolved = eventsOf(sink, "fallback_rate:flaky", "alert.resolved");
    expect(resolved).toHaveLength(1);
    expect(resolved[0]?.data.value).toBeLessThan(0.1);
    // One precision for a value wherever it is read (Redis's cjson keeps 14 digits of a value it
    // stores again, JavaScript 17): 12 significant digits, alike when fired, listed and resolved.
    for (const value of [fired.data.value, active.value, resolved[0]?.data.value])
      expect(Number(value.toPrecision(12))).toBe(value);
    // Still healthy traffic for a while: nothing more is sent.
    for (let index = 0; index < 30; index += 1) await finishOne();
    await sleep(600);
    expect(eventsOf(sink, "fallback_rate:flaky", "alert.fired")).toHaveLength(1);
    expect(eventsOf(sink, "fallback_rate:flaky", "alert.resolved")).toHaveLength(1);
    const listed = (await listAlerts()).filter((alert) => alert.id === "fallback_rate:flaky");
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ state: "resolved", kind: "fallback_rate", subject: "flaky" });
    expect(listed[0].resolved_at).toBeGreaterThanOrEqual(listed[0].fired_at);
  }, 40_000);

  it("breaker_open fires for the provider's and its models' breakers, and resolves when they close", async () => {
    const redis = stack.redis;
    // Open, but past its open_until (a call would probe it now): half-open, nothing fires.
    await redis.hset(
      keys().breaker("model:spare-model"),
      "state",
      "open",
      "open_until",
      String(Date.now() - 1000),
    );
    await sleep(500);
    expect(eventsOf(sink, "breaker_open:model:spare-model")).toHaveLength(0);
    await redis.hset(
      keys().breaker("model:spare-model"),
      "state",
      "open",
      "open_until",
      String(Date.now() + 600_000),
    );
    await waitFor(
      async () => eventsOf(sink, "breaker_open:model:spare-model", "alert.fired")[0],
      "breaker alert",
    );
    // Half-open is not closed: the alert holds.
    await redis.hset(keys().breaker("model:spare-model"), "state", "half_open");
    await sleep(500);
    expect(eventsOf(sink, "breaker_open:model:spare-model", "alert.resolved")).toHaveLength(0);
    await redis.hset(keys().breaker("model:spare-model"), "state", "closed");
    await waitFor(
      async () => eventsOf(sink, "breaker_open:model:spare-model", "alert.resolved")[0],
      "resolved",
    );
    expect(eventsOf(sink, "breaker_open:model:spare-model")).toHaveLength(2);
    expect(eventsOf(sink, "breaker_open:provider:spare")).toHaveLength(0);
  });

  it("keeps an alert webhook the receiver refuses as dead, and an admin retries it", async () => {
    sink.setDefault(500);
    await stack.redis.hset(
      keys().breaker("provider:spare"),
      "state",
      "open",
      "open_until",
      String(Date.now() + 600_000),
    );
    const dead = await waitFor(async () => {
      const list = await stack.request("GET", "/v1/alerts/deliveries?status=dead", { headers: ops });
      // biome-ignore lint/suspicious/noExplicitAny: list items are checked below.
      return list.body.data.find((delivery: any) => delivery.job_id === "breaker_open:provider:spare");
    }, "a dead alert delivery");
    expect(dead).toMatchObject({ event_type: "alert.fired", status: "dead", attempts: 3, last_status: 500 });
    sink.setDefault(200);
    const retried = await stack.request("POST", `/v1/alerts/deliveries/${dead.id}/retry`, { headers: ops });
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ id: dead.id, status: "pending" });
    await waitFor(async () => {
      const list = await stack.request("GET", "/v1/alerts/deliveries?status=delivered", { headers: ops });
      // biome-ignore lint/suspicious/noExplicitAny: list items are checked by id.
      return list.body.data.find((delivery: any) => delivery.id === dead.id);
    }, "the retried delivery to be delivered");
    // Four sends of one message (three refused, one accepted), all with the same webhook-id.
    const sends = sink.requests.filter((request) => request.headers["webhook-id"] === dead.webhook_id);
    expect(sends).toHaveLength(4);
    expect(new Set(sends.map((request) => request.body)).size).toBe(1);
    await stack.redis.hset(keys().breaker("provider:spare"), "state", "closed");
    await waitFor(async () => eventsOf(sink, "breaker_open:provider:spare", "alert.resolved")[0], "resolved");
  });

  it("budget_used fires above 0.8 of the tenant's spend (its usage records) and resolves only below 0.7", async () => {
    // What the tenant's calls have cost, as settled: not what calls in flight hold reserved.
    const usageKey = keys().usage("ops", budgetPeriods(Date.now()).dayDate);
    const spent = (usd: string) => stack.redis.hset(usageKey, "total", usd);
    await spent("9");
    const fired = await waitFor(
      async () => eventsOf(sink, "budget_used:ops", "alert.fired")[0],
      "budget alert",
    );
    expect(fired.data.value).toBeCloseTo(0.9);
    const metrics = await stack.request("GET", "/metrics", { headers: ops });
    expect(metrics.body).toContain('cascade_alerts_firing{kind="budget_used",subject="ops"} 1');
    await spent("7.5"); // between the thresholds: still firing
    await sleep(500);
    expect(eventsOf(sink, "budget_used:ops", "alert.resolved")).toHaveLength(0);
    // A reservation in the budget key (a call in flight, a lease) is no spend.
    await stack.redis.set(keys().spend({ tenant: "ops" }, budgetPeriods(Date.now()).day), "9.5");
    await spent("5");
    await waitFor(async () => eventsOf(sink, "budget_used:ops", "alert.resolved")[0], "budget resolved");
    expect(eventsOf(sink, "budget_used:ops")).toHaveLength(2);
  });

  it("queue_age fires when the oldest waiting job is older than fire_above_s, and resolves once it runs", async () => {
    // Paused for every worker (a worker's own pause may still take the job it is fetching).
    const queue = createQueue(QUEUE_NAMES.completions, {
      connection: stack.redis,
      prefix: keys().bullPrefix,
      logger: pino({ level: "silent" }),
    });
    await queue.pause();
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "Hi" }], max_tokens: 5 } },
      headers: ops,
    });
    expect(created.status).toBe(202);
    const fired = await waitFor(
      async () => eventsOf(sink, "queue_age:completions", "alert.fired")[0],
      "queue age alert",
    );
    expect(fired.data.value).toBeGreaterThan(1);
    await queue.resume();
    await waitFor(async () => eventsOf(sink, "queue_age:completions", "alert.resolved")[0], "queue resolved");
    expect(eventsOf(sink, "queue_age:completions")).toHaveLength(2);
    await queue.close();
  });

  it("GET /v1/alerts is for admins only, and lists the alert deliveries apart", async () => {
    const denied = await stack.request("GET", "/v1/alerts", {
      headers: { authorization: "Bearer plain-key" },
    });
    expect(denied.status).toBe(403);
    const deliveries = await stack.request("GET", "/v1/alerts/deliveries?status=delivered", { headers: ops });
    expect(deliveries.status).toBe(200);
    const messages = new Set(sink.requests.map((request) => request.headers["webhook-id"]));
    expect(deliveries.body.data.length).toBe(messages.size);
    expect(deliveries.body.data[0]).toMatchObject({ url: sink.url, status: "delivered" });
    // A tenant never sees the operators' deliveries.
    const own = await stack.request("GET", "/v1/webhook-deliveries", { headers: ops });
    expect(own.body.data).toEqual([]);
  });
});

describe("the alert evaluator's lease", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(() => redis?.disconnect());

  it("lets one evaluator at a time evaluate; the next holder carries on without firing again", async () => {
    const config = loadConfig(
      {
        REDIS_URL: inject("redisUrl"),
        CASCADE_REDIS_PREFIX: uniquePrefix("alert-lease"),
        ALERTS_SECRET: alertsSecret,
      },
      {
        raw: {
          providers: { sim: { type: "simulated" } },
          models: { fast: { provider: "sim" } },
          alerts: {
            webhook_urls: ["https://ops.example.com/hook"],
            webhook_secret_env: "ALERTS_SECRET",
            rules: [{ kind: "breaker_open", provider: "sim" }],
          },
        },
      },
    );
    const keys = createKeys(config.settings.CASCADE_REDIS_PREFIX);
    const queued: WebhookJobData[] = [];
    // The webhooks queue's one method the evaluator uses, recording what would be delivered.
    const webhookQueue = {
      add: async (_name: string, data: WebhookJobData) => queued.push(data),
    } as unknown as WebhookQueue;
    const logger = pino({ level: "silent" });
    const make = () => new AlertEvaluator({ config, redis, keys, logger, webhookQueue, intervalMs: 100 });
    const [first, second] = [make(), make()];
    await redis.hset(
      keys.breaker("provider:sim"),
      "state",
      "open",
      "open_until",
      String(Date.now() + 600_000),
    );
    for (let round = 0; round < 5; round += 1) await Promise.all([first.tick(), second.tick()]);
    expect(first.evaluations + second.evaluations).toBe(5);
    expect([first.evaluations, second.evaluations].sort()).toEqual([0, 5]);
    expect(queued.map((data) => data.event_type)).toEqual(["alert.fired"]);
    expect(queued[0]).toMatchObject({ tenant: "_operators", job_id: "breaker_open:provider:sim" });

    // The holder goes; the other takes over, sees the alert firing already, and does not re-fire.
    const [holder, other] = first.leading ? [first, second] : [second, first];
    await holder.stop();
    await other.tick();
    expect(other.leading).toBe(true);
    expect(queued).toHaveLength(1);
    await redis.hset(keys.breaker("provider:sim"), "state", "closed");
    await other.tick();
    await other.tick();
    expect(queued.map((data) => data.event_type)).toEqual(["alert.fired", "alert.resolved"]);
    await other.stop();
  });
});

describe("alerts config", () => {
  const base = {
    providers: { sim: { type: "simulated" } },
    models: { fast: { provider: "sim" } },
    routes: { default: { chain: [{ model: "fast" }] } },
    tenants: {
      acme: { api_keys_env: "ACME_KEYS" },
      rich: { api_keys_env: "RICH_KEYS", budget: { monthly_usd: 5 } },
    },
  };
  const load = (alerts: unknown, env: Record<string, string> = {}) =>
    loadConfig({ REDIS_URL: "redis://127.0.0.1:1", ...env }, { raw: { ...base, alerts } });
  const errorOf = (alerts: unknown, env: Record<string, string> = {}) => {
    try {
      load(alerts, env);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("the config was accepted");
  };

  it("accepts the contract's rules with defaults, and a secret set in the environment", () => {
    const config = load(
      {
        webhook_urls: ["https://ops.example.com/cascade"],
        webhook_secret_env: "ALERTS_WEBHOOK_SECRET",
        rules: [
          { kind: "fallback_rate", route: "default" },
          { kind: "breaker_open", provider: "sim" },
          { kind: "budget_used", tenant: "rich" },
          { kind: "queue_age" },
        ],
      },
      { ALERTS_WEBHOOK_SECRET: alertsSecret },
    );
    expect(config.alertsWebhookSecret).toBe(alertsSecret);
    expect(config.file.alerts?.rules[0]).toMatchObject({ window_s: 300, min_requests: 20, fire_above: 0.2 });
  });

  it.each([
    [{ rules: [{ kind: "fallback_rate", route: "nope" }] }, "alerts.rules.0.route: unknown route"],
    [{ rules: [{ kind: "breaker_open", provider: "nope" }] }, "alerts.rules.0.provider: unknown provider"],
    [{ rules: [{ kind: "budget_used", tenant: "nope" }] }, "alerts.rules.0.tenant: unknown tenant"],
    [
      { rules: [{ kind: "budget_used", tenant: "acme" }] },
      'alerts.rules.0.tenant: tenant "acme" has no budget',
    ],
    [
      { rules: [{ kind: "fallback_rate", route: "default", fire_above: 0.2, resolve_below: 0.3 }] },
      "alerts.rules.0.resolve_below: must be below fire_above",
    ],
    [
      { rules: [{ kind: "queue_age", fire_above_s: 10, resolve_below_s: 10 }] },
      "alerts.rules.0.resolve_below_s",
    ],
    [{ rules: [{ kind: "queue_age", colour: "red" }] }, "alerts.rules.0.colour: unknown key"],
    [{ rules: [{ kind: "queue_age" }, { kind: "queue_age" }] }, "alerts.rules.1.kind: a second queue_age"],
    [{ webhook_urls: ["https://ops.example.com"] }, "alerts.webhook_secret_env: webhook_urls need"],
    [{ webhook_secret_env: "whsec_ab/c" }, "alerts.webhook_secret_env: must be the NAME"],
    [{ pager: true }, "alerts.pager: unknown key"],
  ])("names the field: %j", (alerts, message) => {
    expect(errorOf(alerts)).toContain(message);
  });

  it("refuses an unset or malformed alerts secret at startup", () => {
    const alerts = { webhook_urls: ["https://ops.example.com"], webhook_secret_env: "ALERTS_SECRET" };
    expect(errorOf(alerts)).toContain(
      "alerts.webhook_secret_env: the environment variable ALERTS_SECRET is not set",
    );
    expect(errorOf(alerts, { ALERTS_SECRET: "whsec_***" })).toContain(
      "alerts.webhook_secret_env: ALERTS_SECRET secret 1 is not whsec_ followed by base64",
    );
    // Refused in every process, as the worker that signs with it refuses it (the API started with
    // a 3-byte key that stopped the worker).
    expect(errorOf(alerts, { ALERTS_SECRET: "whsec_QUJD" })).toContain(
      "alerts.webhook_secret_env: ALERTS_SECRET secret 1 holds 3 bytes, too few",
    );
    expect(errorOf(alerts, { ALERTS_SECRET: "hunter2" })).toContain("ALERTS_SECRET secret 1 holds 5 bytes");
    // Read as tenants' secrets are: the whsec_ prefix may be left out (as the Standard Webhooks
    // libraries take it).
    expect(() => load(alerts, { ALERTS_SECRET: Buffer.alloc(32, 7).toString("base64") })).not.toThrow();
  });
});
