/**
 * The eviction policy is checked at startup (contract: a Redis that evicts loses jobs). A Redis
 * restarted under running processes with another policy (a managed service's default, a lost
 * redis.conf), or without its data, was taken back silently (failure-injection audit). Each
 * reconnect now reads the policy and the server's run id again: a policy other than noeviction
 * is logged as an error naming the fix, a restarted server as a warning.
 */
import { createRedis, watchRedisComebacks } from "@cascade/shared";
import { afterAll, describe, expect, it } from "vitest";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";

const servers: SpawnedRedis[] = [];
afterAll(async () => {
  for (const server of servers) await server.stop();
});

describe("a Redis that comes back", () => {
  it("is checked again: an evicting policy is an error naming the fix, a restart a warning", async () => {
    const first = await spawnRedisServer();
    servers.push(first);
    const redis = createRedis(first.url, { retryStrategy: () => 50 });
    redis.on("error", () => {});
    const lines: Array<{ level: string; message: string }> = [];
    const logger = {
      error: (_fields: unknown, message: string) => lines.push({ level: "error", message }),
      warn: (_fields: unknown, message: string) => lines.push({ level: "warn", message }),
    };
    watchRedisComebacks(redis, logger as never, first.url);
    try {
      await redis.ping();
      // Reconnects to the same server say nothing.
      redis.disconnect(true);
      await redis.ping();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(lines).toEqual([]);

      await first.stop();
      const second = await spawnRedisServer({
        port: first.port,
        extraArgs: ["--maxmemory-policy", "allkeys-lru"],
      });
      servers.push(second);
      const deadline = Date.now() + 10_000;
      while (lines.length < 2 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(lines.find((line) => line.level === "error")?.message).toMatch(
        /maxmemory-policy=allkeys-lru.*noeviction.*CONFIG SET maxmemory-policy noeviction/,
      );
      // The command it gives reaches this Redis, not whatever answers on 6379.
      expect(lines.find((line) => line.level === "error")?.message).toContain(
        `redis-cli -h 127.0.0.1 -p ${first.port} CONFIG SET`,
      );
      expect(lines.find((line) => line.level === "warn")?.message).toMatch(/restarted/);
    } finally {
      redis.disconnect();
    }
  });
});
