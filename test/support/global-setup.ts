/**
 * Vitest globalSetup: one Redis for the whole run, shared by every test file through
 * `inject("redisUrl")`. Tests isolate themselves with unique key prefixes, so nothing here (or
 * anywhere in the tests) may FLUSHALL: with REDIS_URL the Redis may not be ours alone.
 */
import type { TestProject } from "vitest/node";
import { startRedis } from "./redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** redis://host:port of the run's Redis (REDIS_URL, a spawned redis-server, or a container). */
    redisUrl: string;
    /** The run's Redis is a Redis Cluster (CASCADE_TEST_REDIS=cluster): connect with `testRedis`. */
    redisCluster: boolean;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  project.provide("redisUrl", redis.url);
  project.provide("redisCluster", redis.cluster);
  return async function teardown() {
    const keys = await redis.describeKeys?.().catch((error: Error) => error.message);
    if (keys) console.log(`Redis Cluster of the run: ${keys}`);
    await redis.stop();
  };
}
