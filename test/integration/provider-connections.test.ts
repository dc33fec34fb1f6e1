import { setTimeout as sleep } from "node:timers/promises";
import { type ChatRequest, ConfigError, loadConfig, type ModelConfig } from "@cascade/shared";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createProviderRegistry } from "../../packages/engine/src/providers/registry.js";
import type { ProviderAdapter, ProviderCall } from "../../packages/engine/src/providers/types.js";
import { type FakeHttpServer, hang, startFakeHttpServer } from "../support/fake-upstream-common.js";

/**
 * Upstream connections per provider (`providers.<id>.connections`, default WORKER_CONCURRENCY on
 * workers): with HTTP/1.1 each call in flight holds one connection, so a server that never
 * answers sees exactly as many requests as the provider's pool has connections.
 */

let server: FakeHttpServer;
const open = new Set<number>();
let requests = 0;

beforeAll(async () => {
  server = await startFakeHttpServer(async (context) => {
    requests += 1;
    open.add(context.connectionId);
    await hang(context.signal);
  });
});
afterAll(async () => {
  await server?.close();
});
beforeEach(() => {
  requests = 0;
  open.clear();
});

function call(controller: AbortController): ProviderCall {
  return {
    request: { messages: [{ role: "user", content: "hi" }] } as ChatRequest,
    modelId: "m",
    model: { provider: "up", name: "m" } as ModelConfig,
    upstreamName: "m",
    signal: controller.signal,
  };
}

/** Starts `count` calls that never get an answer; returns how many reached the server. */
async function inFlight(adapter: ProviderAdapter, count: number): Promise<number> {
  const controllers = Array.from({ length: count }, () => new AbortController());
  const calls = controllers.map((controller) => adapter.generate(call(controller)).catch(() => undefined));
  const deadline = Date.now() + 2000;
  // Wait until the server has seen every request the pool lets through, then a little more.
  let seen = -1;
  while (Date.now() < deadline && seen !== requests) {
    seen = requests;
    await sleep(150);
  }
  for (const controller of controllers) controller.abort(new Error("done"));
  await Promise.all(calls);
  return requests;
}

const raw = (connections?: number) => ({
  providers: {
    up: {
      type: "openai",
      base_url: `${server.origin}/v1`,
      ...(connections !== undefined ? { connections } : {}),
    },
  },
  models: {
    m: { provider: "up", name: "m" },
    pooled: {
      deployments: [
        { id: "shared", provider: "up" },
        { id: "own", provider: "up", base_url: `${server.origin}/other/v1` },
      ],
    },
  },
  routes: { default: { chain: [{ model: "m" }] } },
});

describe("upstream connections per provider", () => {
  it("a provider's `connections` caps its calls in flight", async () => {
    const registry = createProviderRegistry(loadConfig({}, { raw: raw(2) }), { connections: 50 });
    expect(await inFlight(registry.get("up"), 5)).toBe(2);
  });

  it("without `connections`, the process's default applies (a worker's WORKER_CONCURRENCY)", async () => {
    const registry = createProviderRegistry(loadConfig({}, { raw: raw() }), { connections: 3 });
    expect(await inFlight(registry.get("up"), 6)).toBe(3);
  });

  it("without either, 512 (the API's default): 20 calls all reach the upstream", async () => {
    const registry = createProviderRegistry(loadConfig({}, { raw: raw() }));
    expect(await inFlight(registry.get("up"), 20)).toBe(20);
  });

  it("a deployment with its own endpoint has a pool of its own, sized as its provider's", async () => {
    const registry = createProviderRegistry(loadConfig({}, { raw: raw(2) }));
    const provider = registry.get("up");
    const own = registry.get("up", "pooled/own");
    expect(own).not.toBe(provider);
    expect(registry.get("up", "pooled/shared")).toBe(provider);
    expect(await inFlight(own, 4)).toBe(2);
    // Both pools at once: 2 + 2.
    requests = 0;
    const controllers = Array.from({ length: 6 }, () => new AbortController());
    const calls = [provider, provider, provider, own, own, own].map((adapter, index) =>
      adapter.generate(call(controllers[index] as AbortController)).catch(() => undefined),
    );
    await sleep(400);
    expect(requests).toBe(4);
    for (const controller of controllers) controller.abort(new Error("done"));
    await Promise.all(calls);
  });

  it("refuses a `connections` that is not a positive whole number, naming the setting", () => {
    for (const value of [0, -1, 1.5, "10"]) {
      expect(() => loadConfig({}, { raw: raw(value as number) })).toThrow(ConfigError);
      expect(() => loadConfig({}, { raw: raw(value as number) })).toThrow(/providers\.up\.connections/);
    }
  });
});
