/**
 * The stack the API fuzzers aim at: the API built in this process with buildApp (through
 * startStack) over the test run's real Redis, listening on a real port, with a worker so jobs and
 * batches actually run, two tenants (so auth is exercised on every request) and a webhook sink.
 * It remembers every resource a request created, so later requests can name real ids.
 */
import { randomBytes } from "node:crypto";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";
import type { Caller, IdChoice } from "./arbitraries/http-parts.js";
import { createWireClient, type WireRequest, type WireResponse } from "./wire-client.js";

export type Tenant = "acme" | "globex";

import type { ResourceKind } from "./arbitraries/endpoint-requests.js";

export type { ResourceKind };

export interface Resource {
  kind: ResourceKind;
  id: string;
  tenant: Tenant;
}

export interface FuzzStack {
  stack: Stack;
  sink: WebhookSink;
  /** Each tenant's API key (random per run). */
  keys: Record<Tenant, string>;
  /** Webhook URLs the worker may call (the sink, by name and by address). */
  webhookUrls: string[];
  /** Every resource created so far, by kind. */
  resources: Record<ResourceKind, Resource[]>;
  /**
   * How often each `METHOD /template STATUS` was answered: a property whose requests all bounce
   * off validation would pass while testing nothing, so the tests check what was reached.
   */
  outcomes: Map<string, number>;
  /** Answers counted in `outcomes` whose `METHOD /template STATUS` starts with `prefix`. */
  answered(prefix: string): number;
  remember(resource: Resource): void;
  /**
   * Turns an id choice into a concrete (path-safe) id: from the pool, mostly one of `tenant`'s
   * own resources (so requests reach them), sometimes anyone's (so they try the other tenant's).
   */
  resolveId(kind: ResourceKind, choice: IdChoice, tenant?: Tenant): string;
  /** The Authorization header for a caller, if any. */
  authorization(caller: Caller): Record<string, string>;
  send(request: WireRequest): Promise<WireResponse>;
  close(): Promise<void>;
}

/** A hostname the fuzz resolver maps to the sink: any other name does not resolve. */
const SINK_HOST = "sink.fuzz.test";

export async function startFuzzStack(redisUrl: string): Promise<FuzzStack> {
  const keys: Record<Tenant, string> = {
    acme: `acme-${randomBytes(12).toString("hex")}`,
    globex: `globex-${randomBytes(12).toString("hex")}`,
  };
  const sink = await startWebhookSink();
  // Every delivery fails and max_attempts is 1, so webhooks soon become dead deliveries: the
  // retry route then has real ids to be fuzzed with.
  sink.setDefault(500);
  const resolve = async (hostname: string) => {
    if (hostname === SINK_HOST || hostname === "127.0.0.1") return [{ address: "127.0.0.1", family: 4 }];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
  };
  const stack = await startStack({
    redisUrl,
    config: {
      providers: {
        sim: { type: "simulated", simulate: { latency_ms: 0 } },
        shaky: { type: "simulated", simulate: { latency_ms: 0, error_rate: 0.5, rate_limit_rate: 0.1 } },
      },
      models: {
        fast: { provider: "sim", capabilities: ["vision", "tools", "json"] },
        flaky: { provider: "shaky" },
      },
      routes: {
        default: { chain: [{ model: "flaky", max_retries: 1 }, { model: "fast" }] },
        strict: { chain: [{ model: "fast" }] },
      },
      tenants: {
        acme: { api_keys_env: "FUZZ_ACME_KEYS", webhook_secret_env: "FUZZ_ACME_WHSEC", admin: true },
        globex: { api_keys_env: "FUZZ_GLOBEX_KEYS", webhook_secret_env: "FUZZ_GLOBEX_WHSEC" },
      },
      webhooks: { allow_private_networks: true, max_attempts: 1, retry_schedule_ms: [50] },
    },
    env: {
      FUZZ_ACME_KEYS: keys.acme,
      FUZZ_GLOBEX_KEYS: keys.globex,
      FUZZ_ACME_WHSEC: `whsec_${randomBytes(24).toString("base64")}`,
      FUZZ_GLOBEX_WHSEC: `whsec_${randomBytes(24).toString("base64")}`,
    },
    concurrency: 20,
    webhooks: { timeoutMs: 2_000, apiResolve: resolve, workerResolve: resolve },
    batches: { sweepIntervalMs: 200 },
  });
  const resources: Record<ResourceKind, Resource[]> = { job: [], file: [], batch: [], delivery: [] };
  const client = createWireClient(stack.url);
  const outcomes = new Map<string, number>();
  return {
    stack,
    sink,
    keys,
    webhookUrls: [sink.url, `http://${SINK_HOST}:${sink.port}/hook?x=1`, "http://nowhere.fuzz.test/hook"],
    resources,
    outcomes,
    answered(prefix) {
      let total = 0;
      for (const [outcome, count] of outcomes) if (outcome.startsWith(prefix)) total += count;
      return total;
    },
    remember(resource) {
      resources[resource.kind].push(resource);
    },
    resolveId(kind, choice, tenant) {
      if (choice.kind === "literal") return choice.value;
      const own = resources[kind].filter((resource) => resource.tenant === tenant);
      const pool = own.length && choice.index % 4 !== 0 ? own : resources[kind];
      return pool.length ? (pool[Math.floor(choice.index / 4) % pool.length] as Resource).id : "none-yet";
    },
    authorization(caller): Record<string, string> {
      if (caller.kind === "tenant") return { authorization: `Bearer ${keys[caller.tenant]}` };
      if (caller.kind === "header") return { authorization: caller.value };
      return {};
    },
    send: (request) => client.send(request),
    async close() {
      client.close();
      await stack.close();
      await sink.close();
    },
  };
}

/** Dead webhook deliveries of each tenant, remembered so the retry route is fuzzed with real ids. */
export async function rememberDeliveries(fuzz: FuzzStack): Promise<void> {
  for (const tenant of ["acme", "globex"] as const) {
    const response = await fuzz.send({
      method: "GET",
      path: "/v1/webhook-deliveries?limit=1000",
      headers: fuzz.authorization({ kind: "tenant", tenant }),
    });
    const known = new Set(fuzz.resources.delivery.map((resource) => resource.id));
    for (const delivery of (response.json?.data ?? []) as Array<{ id: string }>) {
      if (!known.has(delivery.id)) fuzz.remember({ kind: "delivery", id: delivery.id, tenant });
    }
  }
}
