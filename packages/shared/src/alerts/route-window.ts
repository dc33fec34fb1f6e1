import type { Config } from "../config/load.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { fellBack, type RequestObserver } from "../requests/finished-request.js";

/**
 * Counts one finished request in its route's sliding window, timed by Redis so every process
 * buckets alike.
 * KEYS[1] the route's window hash (fields `<bucket_start_s>:r` requests, `<bucket_start_s>:f` fallbacks)
 * ARGV[1] bucket length (s); ARGV[2] "1" when the request fell back; ARGV[3] TTL of the hash (ms)
 * Returns nothing.
 */
const RECORD_SCRIPT = `
local now = tonumber(redis.call('TIME')[1])
local bucket = now - (now % tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], bucket .. ':r', 1)
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], bucket .. ':f', 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
`;

const COMMAND = "cascadeAlertRouteWindowRecord";
type RecordCommand = (...args: Array<string | number>) => Promise<unknown>;

/** How a route's window is bucketed: about 30 buckets over its shortest fallback_rate window. */
export interface RouteWindowShape {
  bucketSeconds: number;
  /** The longest window a rule reads (s): older buckets are dropped. */
  longestWindowSeconds: number;
}

/** The routes that fallback_rate rules watch, with their bucketing. */
export function routeWindowShapes(config: Config): Map<string, RouteWindowShape> {
  const shapes = new Map<string, RouteWindowShape>();
  for (const rule of config.file.alerts?.rules ?? []) {
    if (rule.kind !== "fallback_rate") continue;
    const bucketSeconds = Math.max(1, Math.floor(rule.window_s / 30));
    const known = shapes.get(rule.route);
    shapes.set(rule.route, {
      bucketSeconds: Math.min(known?.bucketSeconds ?? bucketSeconds, bucketSeconds),
      longestWindowSeconds: Math.max(known?.longestWindowSeconds ?? 0, rule.window_s),
    });
  }
  return shapes;
}

/**
 * The request observer behind fallback_rate alerts: each finished request (succeeded or failed;
 * a cancelled one is no answer) of a watched route adds to that route's window. Fire and forget:
 * an observer must not block, and a lost count only blurs a rate.
 */
export function createRouteWindowRecorder(options: {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
}): RequestObserver {
  const { redis, keys, logger } = options;
  const shapes = routeWindowShapes(options.config);
  if (shapes.size > 0 && !(COMMAND in redis)) {
    redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: RECORD_SCRIPT });
  }
  const record =
    shapes.size > 0
      ? ((redis as unknown as Record<string, RecordCommand>)[COMMAND] as RecordCommand)
      : undefined;
  return {
    finished(request) {
      if (!record || request.route === null) return;
      if (request.status !== "succeeded" && request.status !== "failed") return;
      const shape = shapes.get(request.route);
      if (!shape) return;
      const ttlMs = (shape.longestWindowSeconds + 2 * shape.bucketSeconds) * 1000;
      record
        .call(
          redis,
          keys.routeWindow(request.route),
          shape.bucketSeconds,
          fellBack(request) ? "1" : "0",
          ttlMs,
        )
        .catch((error: unknown) =>
          logger.warn(
            { err: (error as Error).message, route: request.route },
            "could not count a request for alerts",
          ),
        );
    },
  };
}

/** Finished requests and fallbacks of a route over its last `windowSeconds`. */
export interface RouteWindowCounts {
  requests: number;
  fallbacks: number;
}

/**
 * Sums a route's buckets that overlap the last `windowSeconds` before `nowSeconds` (Redis time),
 * and drops buckets older than the route's longest window.
 */
export async function readRouteWindow(
  redis: RedisClient,
  keys: Keys,
  route: string,
  shape: RouteWindowShape,
  windowSeconds: number,
  nowSeconds: number,
): Promise<RouteWindowCounts> {
  const key = keys.routeWindow(route);
  const fields = await redis.hgetall(key);
  const counts: RouteWindowCounts = { requests: 0, fallbacks: 0 };
  const stale: string[] = [];
  for (const [field, raw] of Object.entries(fields)) {
    const [start, kind] = field.split(":");
    const end = Number(start) + shape.bucketSeconds;
    if (end <= nowSeconds - shape.longestWindowSeconds) stale.push(field);
    if (end <= nowSeconds - windowSeconds) continue;
    if (kind === "r") counts.requests += Number(raw);
    else if (kind === "f") counts.fallbacks += Number(raw);
  }
  if (stale.length > 0) await redis.hdel(key, ...stale);
  return counts;
}
