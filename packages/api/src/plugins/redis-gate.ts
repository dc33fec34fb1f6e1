import { isRedisRefusal, isRefusalReply, type RedisClient } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import { HttpError } from "./http-error.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * The route answers while Redis is away (what it reads from Redis it does without): the gate
     * does not hold it. GET /metrics: a scrape during an outage still gets the process's own series.
     */
    withoutRedis?: boolean;
  }
}

/** Seconds a client is told to wait before retrying while Redis is away. */
export const RETRY_AFTER_S = 2;

/** ioredis's rejection of a command that was sent but not answered within its timeout. */
const COMMAND_TIMED_OUT = "Command timed out";

/**
 * The one answer while Redis is unreachable: a 503 in the error shape, with Retry-After. A command
 * that timed out was sent and may still run when Redis wakes (a paused or stalled server): for a
 * request that changes something (`method` other than GET or HEAD) the message says so, and points
 * at the Idempotency-Key that makes the retry safe (ADR 0015).
 */
export function redisUnavailable(detail?: string, method = "GET"): HttpError {
  const timedOut = detail === COMMAND_TIMED_OUT;
  const message = detail?.startsWith("OOM ")
    ? "Redis is out of memory (its maxmemory is reached) and refused to write; nothing was written: " +
      "retry in a few seconds (operators: raise maxmemory or free memory)"
    : detail !== undefined && isRefusalReply(detail)
      ? `Redis refused the command for now (${detail}); retry in a few seconds`
      : !timedOut
        ? `Redis is not reachable${detail ? ` (${detail})` : ""}; retry in a few seconds`
        : method === "GET" || method === "HEAD"
          ? `Redis did not answer in time (${COMMAND_TIMED_OUT}); retry in a few seconds`
          : `Redis did not answer in time (${COMMAND_TIMED_OUT}); a change this request asked for may still ` +
            "take effect: retry in a few seconds, with the same Idempotency-Key where the endpoint takes one";
  return new HttpError(503, "service_unavailable_error", message, undefined, {
    "retry-after": String(RETRY_AFTER_S),
  });
}

/** What ioredis rejects a command with when Redis is away (not when the command is wrong). */
const UNAVAILABLE_MESSAGES = [
  "Stream isn't writeable and enableOfflineQueue options is false",
  "Cluster isn't ready and enableOfflineQueue options is false",
  "Connection is closed.",
  // A command sent (a pipeline's, a MULTI's) when the connection dropped: ioredis's AbortError.
  "Command aborted due to connection close",
  COMMAND_TIMED_OUT,
  "None of startup nodes is available",
  "Too many Cluster redirections",
];

/**
 * ioredis errors that mean "Redis is away": the API's command connection has no offline queue
 * (a request must never be held until Redis returns), so a command sent while it reconnects fails
 * at once with one of these. Matched on ioredis's exact messages, not on any text that mentions a
 * socket error (a DNS failure checking a webhook URL is not a Redis outage).
 */
export function isRedisUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "MaxRetriesPerRequestError" || error.name === "ClusterAllFailedError") return true;
  // Redis's own "not now" (out of memory, failover, loading, cluster reconfiguring).
  if (error.name === "ReplyError") return isRedisRefusal(error);
  return UNAVAILABLE_MESSAGES.some((message) => error.message.startsWith(message));
}

/**
 * One promise per outage that every waiting request shares: a listener per request would pass
 * Node's limit of ten and print a warning outside the JSON log.
 */
function createReadyWaiter(redis: RedisClient): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= new Promise<void>((resolve) =>
      redis.once("ready", () => {
        ready = undefined;
        resolve();
      }),
    );
    return ready;
  };
}

/** Resolves true once the client is ready, false after `waitMs` without it. */
function readyWithin(whenReady: () => Promise<void>, redis: RedisClient, waitMs: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  if (waitMs <= 0) return Promise.resolve(false);
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    whenReady().then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), waitMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Requests to routes that need Redis wait at most `waitMs` for it to be ready, then get 503 with
 * Retry-After. Public routes (probes, docs) are never held: /healthz answers while Redis is down
 * and /readyz says so.
 */
export function registerRedisGate(app: FastifyInstance, redis: RedisClient, waitMs: number): void {
  const whenReady = createReadyWaiter(redis);
  // Callback style: the usual case (Redis ready) costs no promise per request.
  app.addHook("onRequest", (request, _reply, done) => {
    const { config } = request.routeOptions;
    if (request.is404 || config.access === "public" || config.withoutRedis || redis.status === "ready") {
      return done();
    }
    readyWithin(whenReady, redis, waitMs).then(
      (ready) => done(ready ? undefined : redisUnavailable(`connection ${redis.status}`)),
      (error: Error) => done(error),
    );
  });
}
