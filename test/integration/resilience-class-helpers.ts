/**
 * Shared pieces of the tests that drive the Resilience class itself (settle.lua and admit.lua on
 * the run's real Redis, under a unique prefix): a config from inline YAML-shaped objects, a hop
 * request for a model, and direct reads of the breaker hash.
 */
import {
  type Config,
  createKeys,
  type Keys,
  loadConfig,
  type RedisClient,
  systemClock,
} from "@cascade/shared";
import { pino } from "pino";
import { inject } from "vitest";
import { type HopRequest, Resilience } from "../../packages/engine/src/resilience/resilience.js";
import { uniquePrefix } from "../support/cascade-stack.js";
import { testRedis } from "../support/redis-clients.js";

/** A key hash no key has: a tenant that exists but that nobody can call as (each tenant its own). */
export const NO_KEY_HASH = "0".repeat(64);
export const noKeyHash = (tenant: number) => String(tenant).padStart(64, "0");

export function inlineConfig(raw: unknown): Config {
  return loadConfig({}, { raw });
}

export interface ResilienceHarness {
  resilience: Resilience;
  keys: Keys;
  /** The connection the Resilience uses. */
  connection: RedisClient;
  /** Another connection, for reading keys and administering the server. */
  admin: RedisClient;
  hop(modelId: string, extra?: Partial<HopRequest>): HopRequest;
  breaker(breakerId: string): Promise<Record<string, string>>;
  close(): Promise<void>;
}

export function startResilience(
  config: Config,
  label: string,
  options: { connection?: RedisClient } = {},
): ResilienceHarness {
  const url = inject("redisUrl");
  const keys = createKeys(uniquePrefix(label));
  const connection = options.connection ?? testRedis(url, { maxRetriesPerRequest: 1 });
  const admin = testRedis(url, { maxRetriesPerRequest: 1 });
  const resilience = new Resilience(
    connection as never,
    config,
    keys,
    pino({ level: "silent" }),
    systemClock,
  );
  return {
    resilience,
    keys,
    connection,
    admin,
    hop(modelId, extra = {}) {
      const model = config.file.models[modelId];
      if (!model) throw new Error(`no model ${modelId}`);
      return {
        providerId: model.provider ?? "",
        modelId,
        model,
        tenant: "default",
        user: undefined,
        route: "default",
        tokens: 100,
        costUsd: 0,
        timeoutMs: 10_000,
        ...extra,
      };
    },
    breaker: (breakerId) => admin.hgetall(keys.breaker(breakerId)),
    async close() {
      await resilience.close();
      connection.disconnect();
      admin.disconnect();
    },
  };
}
