import { describe, expect, inject, it } from "vitest";
import { findFreePort, pingRedis, spawnRedisServer } from "./redis-server.js";

describe("test Redis fixture", () => {
  it("provides a Redis URL that answers PING", async () => {
    const url = inject("redisUrl");
    expect(url).toMatch(/^rediss?:\/\//);
    await expect(pingRedis(url)).resolves.toBeUndefined();
  });

  it("spawns, stops and restarts redis-server on the same port and dir", async () => {
    const first = await spawnRedisServer({ appendonly: true });
    await expect(pingRedis(first.url)).resolves.toBeUndefined();
    await first.stop();
    await expect(pingRedis(first.url, 500)).rejects.toThrow();
    await first.stop(); // stopping twice is harmless

    const second = await spawnRedisServer({ port: first.port, dir: first.dir, appendonly: true });
    try {
      expect(second.url).toBe(first.url);
      await expect(pingRedis(second.url)).resolves.toBeUndefined();
    } finally {
      await second.stop();
    }
  });

  it("survives a crash (SIGKILL) and restarts on the same port", async () => {
    const server = await spawnRedisServer();
    server.kill("SIGKILL");
    await server.stop(); // resolves once the killed process is gone
    const restarted = await spawnRedisServer({ port: server.port });
    try {
      await expect(pingRedis(restarted.url)).resolves.toBeUndefined();
    } finally {
      await restarted.stop();
    }
  });

  it("fails with the server's own reason when the port is taken", async () => {
    const server = await spawnRedisServer();
    try {
      await expect(spawnRedisServer({ port: server.port })).rejects.toThrow(/redis-server exited/);
    } finally {
      await server.stop();
    }
  });

  it("reports a dead address as an error, not a hang", async () => {
    const port = await findFreePort();
    await expect(pingRedis(`redis://127.0.0.1:${port}`, 1_000)).rejects.toThrow(/ECONNREFUSED/);
  });
});
