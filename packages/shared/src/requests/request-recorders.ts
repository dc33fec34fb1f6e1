import { createRouteWindowRecorder } from "../alerts/route-window.js";
import type { Config } from "../config/load.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { DashboardRecorder } from "./dashboard-recorder.js";
import type { RequestObserver } from "./finished-request.js";
import { RecentStatsRecorder } from "./recent-stats-recorder.js";
import { RequestCountRecorder } from "./request-counts.js";

/**
 * What every process that ends requests (a worker its jobs, the API its gateway calls) writes of
 * them to Redis: the alerts' route windows, usage counts, the dashboard's minutes and failures,
 * and the providers' recent request stats. Each gathers in memory and writes every 200 ms
 * (ADR 0023); a failed write is logged, never thrown.
 */
export function createRequestRecorders(options: {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
}): RequestObserver[] {
  const { config, redis, keys, logger } = options;
  const warn = (what: string) => (error: unknown) => logger.warn({ err: error }, `${what} not written`);
  return [
    createRouteWindowRecorder({ config, redis, keys, logger }),
    new RequestCountRecorder(redis, keys, warn("usage counts")),
    new DashboardRecorder(redis, keys, warn("dashboard counts")),
    new RecentStatsRecorder(redis, keys, warn("recent provider stats")),
  ];
}
