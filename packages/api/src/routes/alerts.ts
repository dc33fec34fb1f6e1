import {
  type AlertStore,
  OPERATORS_OWNER,
  type WebhookDeliveryStore,
  type WebhookQueue,
} from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { notFound } from "../plugins/http-error.js";
import { deliveryListQuery, deliveryPage, deliveryParams, retryDelivery } from "./webhook-deliveries.js";

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
      return deliveryPage(deps.deliveries, OPERATORS_OWNER, request.query);
    },
  );
  routes.post(
    "/v1/alerts/deliveries/:id/retry",
    { config: { access: "admin" }, schema: { params: deliveryParams } },
    async (request, reply) => {
      const { id } = request.params;
      const stored = await deps.deliveries.get(id);
      if (stored?.tenant !== OPERATORS_OWNER) throw notFound(`no alert webhook delivery with id ${id}`);
      const pending = await retryDelivery(deps.deliveries, deps.queue, stored, id, "alert webhook delivery");
      return reply.code(202).send(pending);
    },
  );
}
