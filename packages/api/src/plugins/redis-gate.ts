import type { RedisClient } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import { HttpError } from "./http-error.js";

/** Seconds a client is told to wait before retrying while Redis is away. */
const RETRY_AFTER_S = 2;

/** The one answer while Redis is unreachable: a 503 in the error shape, with Retry-After. */
export function redisUnavailable(detail?: string): HttpError {
  return new HttpError(
    503,
    "service_unavailable_error",
    `Redis is not reachable${detail ? ` (${detail})` : ""}; retry in a few seconds`,
    undefined,
    { "retry-after": String(RETRY_AFTER_S) },
  );
}

/**
 * ioredis errors that mean "Redis is away" rather than "this command is wrong": the connection
 * has no offline queue (a request must never be held until Redis returns), so a command sent
 * while it reconnects fails at once with one of these.
 */
export function isRedisUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "MaxRetriesPerRequestError") return true;
  return /Stream isn't writeable|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|CLUSTERDOWN|LOADING|READONLY|Failed to refresh slots cache/.test(
    error.message,
  );
}

/** Resolves true once the client is ready, false after `waitMs` without it. */
function readyWithin(redis: RedisClient, waitMs: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  if (waitMs <= 0) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      resolve(false);
    }, waitMs);
    redis.once("ready", onReady);
  });
}

/**
 * Requests to routes that need Redis wait at most `waitMs` for it to be ready, then get 503 with
 * Retry-After. Public routes (probes, docs) are never held: /healthz answers while Redis is down
 * and /readyz says so.
 */
export function registerRedisGate(app: FastifyInstance, redis: RedisClient, waitMs: number): void {
  app.addHook("onRequest", async (request) => {
    if (request.is404 || request.routeOptions.config.access === "public") return;
    if (redis.status === "ready") return;
    if (!(await readyWithin(redis, waitMs))) throw redisUnavailable(`connection ${redis.status}`);
  });
}
