import type { FastifyInstance } from "fastify";
import { sendError } from "../plugins/error-handler.js";
import { RETRY_AFTER_S } from "../plugins/redis-gate.js";

/** GET /healthz and /readyz; `pingRedis` is a round trip to Redis (readiness is reaching it). */
export function registerOpsRoutes(app: FastifyInstance, deps: { pingRedis: () => Promise<unknown> }): void {
  app.get("/healthz", { config: { access: "public" } }, async () => ({ status: "ok" }));

  app.get("/readyz", { config: { access: "public" } }, async (_request, reply) => {
    try {
      const timeout = new Promise<never>((_resolve, reject) =>
        setTimeout(() => reject(new Error("timed out after 2 s")), 2000).unref(),
      );
      await Promise.race([deps.pingRedis(), timeout]);
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
