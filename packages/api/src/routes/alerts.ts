import {
  type AlertStore,
  OPERATORS_OWNER,
  type WebhookDeliveryStore,
  type WebhookQueue,
} from "@cascade/shared";
import { Job } from "bullmq";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { HttpError, notFound } from "../plugins/http-error.js";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";
import { deliveryListQuery, deliveryParams } from "./webhook-deliveries.js";

/**
 * GET /v1/alerts (admin): firing alerts, most recently fired first, then resolved ones, newest
 * first. GET /v1/alerts/deliveries (admin): the alert webhooks' delivery records, e.g.
 * `?status=dead`, as GET /v1/webhook-deliveries lists a tenant's; POST
 * /v1/alerts/deliveries/:id/retry sends a dead one again, as POST /v1/webhook-deliveries/:id/retry.
 */
export function registerAlertRoutes(
  app: FastifyInstance,
  deps: { alerts: AlertStore; deliveries: WebhookDeliveryStore; queue: WebhookQueue },
): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.get("/v1/alerts", { config: { access: "admin" } }, async () => {
    const [active, history] = await Promise.all([deps.alerts.active(), deps.alerts.history()]);
    return { object: "list", data: [...active, ...history] };
  });
  routes.get(
    "/v1/alerts/deliveries",
    { config: { access: "admin" }, schema: { querystring: deliveryListQuery } },
    async (request) => {
      const data = await deps.deliveries.list(OPERATORS_OWNER, request.query.status, request.query.limit);
      return { object: "list", data };
    },
  );
  routes.post(
    "/v1/alerts/deliveries/:id/retry",
    { config: { access: "admin" }, schema: { params: deliveryParams } },
    async (request, reply) => {
      const { id } = request.params;
      const stored = await deps.deliveries.get(id);
      if (stored?.tenant !== OPERATORS_OWNER) throw notFound(`no alert webhook delivery with id ${id}`);
      const conflict = (message: string) =>
        new HttpError(409, "conflict_error", message, undefined, { "retry-after": "1" });
      if (stored.delivery.status !== "dead") {
        throw conflict(
          `alert webhook delivery ${id} is ${stored.delivery.status}; only dead ones can be retried`,
        );
      }
      // As for job webhooks: the record moves first (compare-and-set), then BullMQ runs it again.
      const pending = await deps.deliveries.move(OPERATORS_OWNER, id, "dead", "pending");
      if (!pending) throw conflict(`alert webhook delivery ${id} is being retried already`);
      try {
        const job = await Job.fromId(deps.queue, id);
        if (!job) throw new Error("its queued payload has expired");
        await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
      } catch (error) {
        await deps.deliveries.move(OPERATORS_OWNER, id, "pending", "dead");
        if (isRedisUnavailableError(error)) throw error;
        throw conflict(
          `alert webhook delivery ${id} cannot be retried right now: ${(error as Error).message}`,
        );
      }
      return reply.code(202).send(pending);
    },
  );
}
