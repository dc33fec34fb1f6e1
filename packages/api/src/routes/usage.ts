import { budgetPeriods, type Clock } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { UsageStore } from "../jobs/usage-store.js";
import { badRequest } from "../plugins/http-error.js";

const MAX_DAYS = 366;
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "use a UTC date, YYYY-MM-DD");
const usageQuery = z.object({ start: day.optional(), end: day.optional() });

/** GET /v1/usage: the tenant's spend by route, model and end user over UTC days. */
export function registerUsageRoutes(app: FastifyInstance, deps: { usage: UsageStore; clock: Clock }): void {
  app
    .withTypeProvider<ZodTypeProvider>()
    .get("/v1/usage", { schema: { querystring: usageQuery } }, async (request) => {
      const today = budgetPeriods(deps.clock.now()).dayDate;
      const end = request.query.end ?? today;
      const start = request.query.start ?? end;
      const startMs = Date.parse(`${start}T00:00:00Z`);
      const endMs = Date.parse(`${end}T00:00:00Z`);
      if (Number.isNaN(startMs)) throw badRequest(`start: "${start}" is not a date`, "start");
      if (Number.isNaN(endMs)) throw badRequest(`end: "${end}" is not a date`, "end");
      if (endMs < startMs) throw badRequest("end must not be before start", "end");
      const days: string[] = [];
      for (let at = startMs; at <= endMs; at += 86_400_000)
        days.push(new Date(at).toISOString().slice(0, 10));
      if (days.length > MAX_DAYS) throw badRequest(`a period holds at most ${MAX_DAYS} days`, "start");

      const usage = await deps.usage.read(request.tenant, days);
      return {
        object: "usage",
        tenant: request.tenant,
        start,
        end,
        cost_usd: usage.costUsd,
        by_route: usage.byRoute,
        by_model: usage.byModel,
        by_user: usage.byUser,
        daily: usage.daily,
      };
    });
}
