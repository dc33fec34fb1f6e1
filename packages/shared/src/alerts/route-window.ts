import type { ChainableCommander } from "ioredis";
import type { Config } from "../config/load.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { BatchedWrites } from "../requests/batched-writes.js";
import { type FinishedRequest, fellBack, type RequestObserver } from "../requests/finished-request.js";

/**
 * Counts finished requests in their route's sliding window, timed by Redis so every process
 * buckets alike (a batch of requests lands in the bucket of the moment it is written: at most
 * REQUEST_COUNTS_FLUSH_MS after they ended).
 * KEYS[1] the route's window hash (fields `<bucket_start_s>:r` requests, `<bucket_start_s>:f` fallbacks)
 * ARGV[1] bucket length (s); ARGV[2] how many of them fell back; ARGV[3] TTL of the hash (ms);
 * ARGV[4] how many requests (1 when absent)
 * Returns nothing.
 */
const RECORD_SCRIPT = `
local now = tonumber(redis.call('TIME')[1])
local bucket = now - (now % tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], bucket .. ':r', tonumber(ARGV[4] or '1'))
local fallbacks = tonumber(ARGV[2])
if fallbacks > 0 then redis.call('HINCRBY', KEYS[1], bucket .. ':f', fallbacks) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
`;

const COMMAND = "cascadeAlertRouteWindowRecord";
type RecordCommand = (...args: Array<string | number>) => unknown;

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
 * a cancelled one is no answer) of a watched route adds to that route's window. Added up in
 * memory per route and written every REQUEST_COUNTS_FLUSH_MS in one MULTI (batched-writes.ts;
 * `close()` on shutdown writes the rest): an observer must not block, and a lost count only
 * blurs a rate.
 */
class RouteWindowRecorder extends BatchedWrites implements RequestObserver {
  private readonly counts = new Map<string, RouteWindowCounts>();

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly shapes: Map<string, RouteWindowShape>,
    logger: Logger,
    flushMs?: number,
  ) {
    super(
      redis,
      (error) =>
        logger.warn(
          {
            err: (error as Error)?.message ?? String(error),
            unwritten: (error as { unwritten?: unknown })?.unwritten,
          },
          "could not count requests for alerts",
        ),
      flushMs,
    );
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: RECORD_SCRIPT });
  }

  protected get pending(): boolean {
    return this.counts.size > 0;
  }

  protected drainInto(transaction: ChainableCommander): unknown {
    const held = Object.fromEntries(this.counts);
    const record = (transaction as unknown as Record<string, RecordCommand>)[COMMAND] as RecordCommand;
    for (const [route, counts] of this.counts) {
      const shape = this.shapes.get(route);
      if (!shape) continue;
      const ttlMs = (shape.longestWindowSeconds + 2 * shape.bucketSeconds) * 1000;
      record.call(
        transaction,
        this.keys.routeWindow(route),
        shape.bucketSeconds,
        counts.fallbacks,
        ttlMs,
        counts.requests,
      );
    }
    this.counts.clear();
    return held;
  }

  finished(request: FinishedRequest): void {
    if (request.route === null) return;
    if (request.status !== "succeeded" && request.status !== "failed") return;
    if (!this.shapes.has(request.route)) return;
    let counts = this.counts.get(request.route);
    if (!counts) {
      counts = { requests: 0, fallbacks: 0 };
      this.counts.set(request.route, counts);
    }
    counts.requests += 1;
    if (fellBack(request)) counts.fallbacks += 1;
    this.gathered();
  }
}

export function createRouteWindowRecorder(options: {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  flushMs?: number;
}): RequestObserver {
  const { redis, keys, logger } = options;
  const shapes = routeWindowShapes(options.config);
  // No fallback_rate rule: nothing to count.
  if (shapes.size === 0) return { finished() {} };
  return new RouteWindowRecorder(redis, keys, shapes, logger, options.flushMs);
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
