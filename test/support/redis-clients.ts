/**
 * ioredis clients for tests, a Cluster client when the run's Redis is a Redis Cluster
 * (CASCADE_TEST_REDIS=cluster): a plain client there fails on every key another master serves
 * (MOVED). Cascade's processes decide the same thing themselves, from the seed node (checkRedis).
 */
import { type ConnectionOptions, createRedis, type RedisClient } from "@cascade/shared";
import { Cluster, type Redis } from "ioredis";
import { inject } from "vitest";

/** Whether `url` is the run's Redis and that Redis is a cluster (a test's own redis-server is not). */
export function isClusterUrl(url: string): boolean {
  return inject("redisCluster") && url === inject("redisUrl");
}

/** A client of `url` (default: the run's Redis), cluster-aware when it must be. */
export function testRedis(url: string = inject("redisUrl"), options: ConnectionOptions = {}): RedisClient {
  return createRedis(url, { cluster: isClusterUrl(url), ...options });
}

/**
 * KEYS `pattern` on a client or a cluster: a cluster client sends KEYS to one node only, so ask
 * every master. (Tests read their own keys, a few at most; never KEYS in production code.)
 */
export async function keysMatching(redis: RedisClient, pattern: string): Promise<string[]> {
  if (!(redis instanceof Cluster)) return redis.keys(pattern);
  const perMaster = await Promise.all((await serverNodes(redis, "master")).map((node) => node.keys(pattern)));
  return perMaster.flat();
}

/**
 * The servers behind a client, for commands that act on one server (ACL, CLIENT PAUSE,
 * MONITOR): a plain client's own server, or a cluster's masters (with `"all"`, its replicas too:
 * ACL users are not replicated).
 */
export async function serverNodes(redis: RedisClient, role: "master" | "all" = "all"): Promise<Redis[]> {
  if (!(redis instanceof Cluster)) return [redis];
  if (redis.status !== "ready") await new Promise((resolve) => redis.once("ready", resolve));
  return redis.nodes(role);
}

/** Runs one command on every server behind `redis` (see serverNodes). */
export async function onEveryServer(redis: RedisClient, command: string, ...args: string[]): Promise<void> {
  await Promise.all((await serverNodes(redis)).map((node) => node.call(command, ...args)));
}
