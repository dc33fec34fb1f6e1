import {
  type AlertStore,
  DELIVERY_STATUSES,
  OPERATORS_OWNER,
  type WebhookDeliveryStore,
} from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

const deliveriesQuery = z.object({
  status: z
    .enum(DELIVERY_STATUSES, { error: `status must be one of ${DELIVERY_STATUSES.join(", ")}` })
    .optional(),
  limit: z.coerce
    .number({ error: "limit must be a number" })
    .int("limit must be a whole number")
    .min(1, "limit must be at least 1")
    .max(1000, "limit must be at most 1000")
    .default(100),
});

/**
 * GET /v1/alerts (admin): firing alerts, most recently fired first, then resolved ones, newest
 * first. GET /v1/alerts/deliveries (admin): the alert webhooks' delivery records, e.g.
 * `?status=dead`, as GET /v1/webhook-deliveries lists a tenant's.
 */
export function registerAlertRoutes(
  app: FastifyInstance,
  deps: { alerts: AlertStore; deliveries: WebhookDeliveryStore },
): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.get("/v1/alerts", { config: { access: "admin" } }, async () => {
    const [active, history] = await Promise.all([deps.alerts.active(), deps.alerts.history()]);
    return { object: "list", data: [...active, ...history] };
  });
  routes.get(
    "/v1/alerts/deliveries",
    { config: { access: "admin" }, schema: { querystring: deliveriesQuery } },
    async (request) => {
      const data = await deps.deliveries.list(OPERATORS_OWNER, request.query.status, request.query.limit);
      return { object: "list", data };
    },
  );
}
