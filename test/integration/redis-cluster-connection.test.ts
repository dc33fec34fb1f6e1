/**
 * How a process finds out it talks to a Redis Cluster: checkRedis asks the node of REDIS_URL
 * (`cluster_enabled:1`), and createRedis then makes cluster clients. Runs against the run's Redis,
 * single or cluster (CASCADE_TEST_REDIS=cluster), and checks what holds for that one.
 */
import { ConfigError, checkRedis, createKeys, createRedis } from "@cascade/shared";
import { Cluster } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { uniquePrefix } from "../support/cascade-stack.js";

const url = inject("redisUrl");
const isCluster = inject("redisCluster");

describe(`checkRedis and createRedis on the run's Redis (${isCluster ? "a cluster" : "a single server"})`, () => {
  it("reports cluster mode as the node does", async () => {
    const check = await checkRedis(url);
    expect(check.cluster).toBe(isCluster);
  });

  it("writes and reads keys of several hash tags, each on its own slot's master", async () => {
    const redis = createRedis(url, { cluster: (await checkRedis(url)).cluster });
    try {
      expect(redis instanceof Cluster).toBe(isCluster);
      const tags = Array.from({ length: 8 }, () => createKeys(uniquePrefix("cluster-connection")));
      for (const keys of tags) await redis.set(keys.batchesActive, "1", "EX", 60);
      for (const keys of tags) expect(await redis.get(keys.batchesActive)).toBe("1");
      // One tag's keys in one MULTI: no CROSSSLOT, whichever master holds the tag.
      const keys = tags[0] ?? createKeys("unused");
      const replies = await redis
        .multi()
        .set(keys.alertsLease, "x", "EX", 60)
        .get(keys.batchesActive)
        .del(keys.alertsLease, keys.batchesActive)
        .exec();
      expect(replies?.map(([error]) => error)).toEqual([null, null, null]);
    } finally {
      redis.disconnect();
    }
  });

  it("a REDIS_URL selecting database 2: refused on a cluster node, naming the setting; fine on a single server", async () => {
    const result = await checkRedis(`${url}/2`).catch((caught: Error) => caught);
    if (!isCluster) {
      expect(result).toMatchObject({ cluster: false });
      return;
    }
    expect(result).toBeInstanceOf(ConfigError);
    expect((result as Error).message).toMatch(/^REDIS_URL selects database 2, .* Redis Cluster node/);
  });
});
