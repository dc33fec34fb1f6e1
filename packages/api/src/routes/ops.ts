import type { FastifyInstance } from "fastify";
import { sendError } from "../plugins/error-handler.js";
import { RETRY_AFTER_S } from "../plugins/redis-gate.js";

/**
 * How long /readyz waits for Redis's PONG: within the 1 s a Kubernetes probe waits by default, so a
 * frozen Redis (the connection open, nothing answering) is a 503, not a probe that timed out.
 */
const READY_PING_MS = 900;

/** GET /healthz and /readyz; `pingRedis` is a round trip to Redis (readiness is reaching it). */
export function registerOpsRoutes(
  app: FastifyInstance,
  deps: { pingRedis: () => Promise<unknown>; connected?: () => boolean },
): void {
  app.get("/healthz", { config: { access: "public" } }, async () => ({ status: "ok" }));

  app.get("/readyz", { config: { access: "public" } }, async (_request, reply) => {
    try {
      // A connection that is down answers now, without waiting for a ping to fail.
      if (deps.connected && !deps.connected()) throw new Error("not connected");
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${READY_PING_MS} ms`)), READY_PING_MS);
      });
      await Promise.race([deps.pingRedis(), timeout]).finally(() => clearTimeout(timer));
      return { status: "ready", redis: "ok" };
    } catch (error) {
      // As every route answers while Redis is away: when to look again.
      reply.header("retry-after", String(RETRY_AFTER_S));
      return sendError(
        reply,
        503,
        "service_unavailable_error",
        `Redis is not reachable: ${(error as Error).message}`,
      );
    }
  });
}
