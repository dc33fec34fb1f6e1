import { budgetPeriods, type Clock, type Keys, type RedisClient } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { badRequest } from "../plugins/http-error.js";

const MAX_DAYS = 366;
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "use a UTC date, YYYY-MM-DD");
const usageQuery = z.object({ start: day.optional(), end: day.optional() });

function addTo(target: Record<string, number>, name: string, amount: number) {
  target[name] = Math.round(((target[name] ?? 0) + amount) * 1e10) / 1e10;
}

/** GET /v1/usage: the tenant's spend by route, model and end user over UTC days. */
export function registerUsageRoutes(
  app: FastifyInstance,
  deps: { redis: RedisClient; keys: Keys; clock: Clock },
): void {
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

      const pipeline = deps.redis.pipeline();
      for (const date of days) pipeline.hgetall(deps.keys.usage(request.tenant, date));
      const replies = ((await pipeline.exec()) ?? []) as Array<[Error | null, Record<string, string>]>;
      const byRoute: Record<string, number> = {};
      const byModel: Record<string, number> = {};
      const byUser: Record<string, number> = {};
      const daily: Array<{ date: string; cost_usd: number }> = [];
      let total = 0;
      replies.forEach(([error, fields], index) => {
        if (error) throw error;
        let dayTotal = 0;
        for (const [field, value] of Object.entries(fields ?? {})) {
          const amount = Number(value);
          const [kind, ...rest] = field.split(":");
          const name = rest.join(":");
          if (kind === "total") dayTotal += amount;
          else if (kind === "route") addTo(byRoute, name, amount);
          else if (kind === "model") addTo(byModel, name, amount);
          else if (kind === "user") addTo(byUser, name, amount);
        }
        total += dayTotal;
        daily.push({ date: days[index] as string, cost_usd: Math.round(dayTotal * 1e10) / 1e10 });
      });
      return {
        object: "usage",
        tenant: request.tenant,
        start,
        end,
        cost_usd: Math.round(total * 1e10) / 1e10,
        by_route: byRoute,
        by_model: byModel,
        by_user: byUser,
        daily,
      };
    });
}
