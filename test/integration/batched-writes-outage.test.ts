/**
 * Usage counts, dashboard rows and recent provider stats are gathered in memory and written every
 * 200 ms. A write that never reached Redis (the API's connection queues nothing while Redis is
 * away) was reported and dropped: a failure-injection audit saw two gateway calls answered across
 * a Redis restart counted in the spend but missing from `/v1/usage`'s rows. Such a write is now
 * kept and sent with the next one; a write that may have been applied is still never sent twice.
 */
import { createKeys, type FinishedRequest, RequestCountRecorder } from "@cascade/shared";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { uniquePrefix } from "../support/cascade-stack.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";

const clients: Redis[] = [];
afterAll(() => {
  for (const client of clients) client.disconnect();
});

const request = (finishedAtMs: number): FinishedRequest => ({
  door: "gateway",
  tenant: "acme",
  route: "default",
  firstModel: "echo",
  status: "succeeded",
  model: "echo",
  provider: "sim",
  costUsd: 0.25,
  attempts: [],
  createdAtMs: finishedAtMs - 10,
  finishedAtMs,
});

describe("batched count writes while Redis is away", () => {
  it("reports what is left when the process closes before Redis is back, within close()'s bound", async () => {
    const server = await spawnRedisServer();
    const redis = new Redis(server.url, { enableOfflineQueue: false, retryStrategy: () => 50 });
    redis.on("error", () => {});
    clients.push(redis);
    const errors: unknown[] = [];
    const recorder = new RequestCountRecorder(
      redis as never,
      createKeys(uniquePrefix("heldclose")),
      (error) => errors.push(error),
    );
    while (redis.status !== "ready") await new Promise((resolve) => setTimeout(resolve, 10));
    await server.stop();
    while (redis.status === "ready") await new Promise((resolve) => setTimeout(resolve, 10));
    recorder.finished(request(Date.now()));
    await recorder.flush();
    const started = Date.now();
    await recorder.close(1_000);
    expect(Date.now() - started).toBeLessThan(1_500);
    // The last write is not taken back and sent again at once (it spun while Redis was away).
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(errors).toHaveLength(1);
    expect(JSON.stringify((errors[0] as { unwritten: unknown }).unwritten)).toContain("total:requests");
  });

  it("keeps what never reached Redis and writes it once Redis is back", async () => {
    let server: SpawnedRedis = await spawnRedisServer();
    // As the API's command connection: no offline queue, so a write while away fails at once.
    const redis = new Redis(server.url, { enableOfflineQueue: false, retryStrategy: () => 50 });
    redis.on("error", () => {});
    clients.push(redis);
    const status = async (wanted: (status: string) => boolean) => {
      while (!wanted(redis.status)) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const keys = createKeys(uniquePrefix("heldcounts"));
    const errors: unknown[] = [];
    const recorder = new RequestCountRecorder(redis as never, keys, (error) => errors.push(error));
    const now = Date.now();
    try {
      await status((current) => current === "ready");
      await server.stop();
      await status((current) => current !== "ready");

      recorder.finished(request(now));
      await recorder.flush();
      expect(errors).toEqual([]);

      server = await spawnRedisServer({ port: server.port });
      await status((current) => current === "ready");
      recorder.finished(request(now));
      await recorder.flush();
      const day = new Date(now).toISOString().slice(0, 10);
      const counts = await redis.hgetall(keys.requestCounts("acme", day));
      expect(counts).toMatchObject({
        "total:requests": "2",
        "route:default:requests": "2",
        "total:cost": "0.5",
      });
      expect(errors).toEqual([]);
      await recorder.close();
    } finally {
      await server.stop();
    }
  });
});
