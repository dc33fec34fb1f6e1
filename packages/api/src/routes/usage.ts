import {
  addRequestCounts,
  addRequestCountTable,
  budgetPeriods,
  type Clock,
  costPerSuccess,
  emptyRequestCounts,
  emptyRequestCountTable,
  isoWeek,
  type RequestCounts,
  type RequestCountTable,
} from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { UsageStore } from "../jobs/usage-store.js";
import { badRequest } from "../plugins/http-error.js";

const MAX_DAYS = 366;
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "use a UTC date, YYYY-MM-DD");
const usageQuery = z.object({
  start: day.optional(),
  end: day.optional(),
  /** `week` adds `weekly`, the period's counts by ISO week (UTC); `day` (the default) does not. */
  group: z.enum(["day", "week"]).optional(),
});

const DAY_MS = 86_400_000;

/** A `YYYY-MM-DD` query date as Unix ms at 00:00 UTC; a day not on the calendar (02-30) is a 400. */
function utcDay(date: string, field: "start" | "end"): number {
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== date) {
    throw badRequest(`${field}: "${date}" is not a date`, field);
  }
  return ms;
}

/** One row of `routes`, `models` or `weekly` as the contract names its fields. */
function countsView(row: RequestCounts) {
  return {
    requests: row.requests,
    succeeded: row.succeeded,
    failed: row.failed,
    fallbacks: row.fallbacks,
    cost_usd: row.costUsd,
    cost_per_success_usd: costPerSuccess(row),
  };
}

function viewsById(rows: Record<string, RequestCounts>) {
  return Object.fromEntries(Object.entries(rows).map(([id, row]) => [id, countsView(row)]));
}

/** The period's days grouped by ISO week, in order: only the days asked for count in a week. */
function weekly(days: readonly string[], tables: readonly RequestCountTable[]) {
  const weeks = new Map<string, RequestCounts>();
  days.forEach((date, index) => {
    const week = isoWeek(date);
    const row = weeks.get(week) ?? emptyRequestCounts();
    weeks.set(week, addRequestCounts(row, tables[index]?.total ?? emptyRequestCounts()));
  });
  return [...weeks].map(([week, row]) => ({
    week,
    requests: row.requests,
    succeeded: row.succeeded,
    cost_usd: row.costUsd,
    cost_per_success_usd: costPerSuccess(row),
  }));
}

/**
 * GET /v1/usage: the tenant's spend by route, model and end user over UTC days, and its finished
 * requests' counts and cost per success by route and by first model (`?group=week`: by ISO week
 * too). docs/operations.md, "Cost per successful request", says what is counted.
 */
export function registerUsageRoutes(app: FastifyInstance, deps: { usage: UsageStore; clock: Clock }): void {
  app
    .withTypeProvider<ZodTypeProvider>()
    .get("/v1/usage", { schema: { querystring: usageQuery } }, async (request) => {
      const today = budgetPeriods(deps.clock.now()).dayDate;
      const end = request.query.end ?? today;
      const start = request.query.start ?? end;
      const startMs = utcDay(start, "start");
      const endMs = utcDay(end, "end");
      if (endMs < startMs) throw badRequest("end must not be before start", "end");
      // From the two dates, before a day is listed: a period of centuries must not build them all.
      if ((endMs - startMs) / DAY_MS + 1 > MAX_DAYS) {
        throw badRequest(`a period holds at most ${MAX_DAYS} days`, "start");
      }
      const days: string[] = [];
      for (let at = startMs; at <= endMs; at += DAY_MS) days.push(new Date(at).toISOString().slice(0, 10));

      const [usage, counts] = await Promise.all([
        deps.usage.read(request.tenant, days),
        deps.usage.readCounts(request.tenant, days),
      ]);
      const period = counts.reduce(addRequestCountTable, emptyRequestCountTable());
      return {
        object: "usage",
        tenant: request.tenant,
        start,
        end,
        cost_usd: usage.costUsd,
        by_route: usage.byRoute,
        by_model: usage.byModel,
        by_user: usage.byUser,
        by_deployment: usage.byDeployment,
        daily: usage.daily,
        routes: viewsById(period.routes),
        models: viewsById(period.models),
        ...(request.query.group === "week" ? { weekly: weekly(days, counts) } : {}),
      };
    });
}
