import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  budgetPeriods,
  type Clock,
  type Config,
  DASHBOARD_NO_ROUTE,
  type DashboardFailure,
  type Keys,
  minuteOf,
  oldestWaitingMs,
  type RedisClient,
} from "@cascade/shared";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import type { UsageStore } from "../jobs/usage-store.js";
import type { ProviderStatusStore } from "../providers/provider-status-store.js";

export interface DashboardDeps {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  queue: Queue;
  providers: ProviderStatusStore;
  usage: UsageStore;
  clock: Clock;
}

/**
 * The page's files: plain HTML, JS and CSS with no build step, which the package's build script
 * copies to `dist/dashboard` (tsc copies nothing else): `../dashboard` from `dist/routes`, and from
 * `src/routes` when the sources run under tsx or vitest.
 */
const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "../dashboard");
const PAGE_FILES: Record<string, { file: string; type: string }> = {
  "/dashboard": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/dashboard.js": { file: "dashboard.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/dashboard.css": { file: "dashboard.css", type: "text/css; charset=utf-8" },
};

const HOUR_MINUTES = 60;

/** The page's own script, style and API, nothing else; never framed. */
const DASHBOARD_CSP =
  "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

function roundUsd(amount: number): number {
  return Math.round(amount * 1e10) / 1e10;
}

/**
 * GET /dashboard (the page: public, it holds no data) and GET /v1/dashboard (admin: everything the
 * page shows that no other endpoint gives, in one call).
 */
export function registerDashboardRoutes(app: FastifyInstance, deps: DashboardDeps): void {
  for (const [url, { file, type }] of Object.entries(PAGE_FILES)) {
    app.get(url, { schema: { hide: true }, config: { access: "public" } }, async (_request, reply) => {
      const body = await readFile(join(PAGE_DIR, file));
      // The page asks for an admin key: no other site may frame it (clickjacking), as the board.
      // It loads only its own files and talks only to this API: nothing else may run in it.
      return reply
        .type(type)
        .header("cache-control", "no-cache")
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", DASHBOARD_CSP)
        .send(body);
    });
  }

  // Whether the page must ask for a key (what any request would find out anyway).
  app.get("/dashboard/mode", { schema: { hide: true }, config: { access: "public" } }, async () => ({
    open_mode: deps.config.openMode,
  }));

  app.get("/v1/dashboard", { schema: { hide: true }, config: { access: "admin" } }, async (request) => {
    const now = deps.clock.now();
    const [queue, routes, spend, failures, providers, alerts] = await Promise.all([
      readQueue(deps, now),
      readRoutes(deps, now),
      readSpend(deps, now),
      readFailures(deps),
      deps.providers.read(),
      readAlerts(app, request.headers.authorization),
    ]);
    return {
      object: "dashboard",
      generated_at: now,
      open_mode: deps.config.openMode,
      queue,
      routes,
      spend_today: spend,
      recent_failures: failures,
      providers: providers.data,
      alerts,
    };
  });
}

/**
 * Creation time (Unix ms) of the oldest job waiting to run, as GET /metrics reads it for
 * cascade_queue_oldest_waiting_seconds: the wait list's tail, the prioritized set (which fair
 * share orders by tenant and aging, not by age) and the delayed set's jobs that have not started,
 * read whole up to a bound and sampled beyond it (see oldestWaitingMs).
 */
async function oldestWaitingAt(redis: RedisClient, queue: Queue): Promise<number | null> {
  const oldest = await oldestWaitingMs(redis, {
    wait: queue.toKey("wait"),
    prioritized: queue.toKey("prioritized"),
    delayed: queue.toKey("delayed"),
    job: (jobId) => queue.toKey(jobId),
  });
  return oldest ?? null;
}

async function readQueue(deps: DashboardDeps, now: number) {
  const { queue } = deps;
  const [counts, oldestAt] = await Promise.all([
    queue.getJobCounts("waiting", "prioritized", "active", "delayed", "waiting-children"),
    oldestWaitingAt(deps.redis, queue),
  ]);
  return {
    name: queue.name,
    counts,
    waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
    in_flight: counts.active ?? 0,
    delayed: counts.delayed ?? 0,
    oldest_waiting_age_s: oldestAt === null ? null : Math.max(0, Math.round((now - oldestAt) / 1000)),
  };
}

async function readRoutes(deps: DashboardDeps, now: number) {
  const names = [...Object.keys(deps.config.file.routes), DASHBOARD_NO_ROUTE];
  const lastMinute = minuteOf(now);
  const firstMinute = lastMinute - HOUR_MINUTES + 1;
  const pipeline = deps.redis.pipeline();
  for (const name of names) {
    for (let minute = firstMinute; minute <= lastMinute; minute++) {
      pipeline.hgetall(deps.keys.dashboardRouteMinute(name, minute));
    }
  }
  const replies = ((await pipeline.exec()) ?? []) as Array<[Error | null, Record<string, string>]>;
  const routes: Record<string, unknown> = {};
  names.forEach((name, routeIndex) => {
    const totals = { requests: 0, succeeded: 0, failed: 0, fallbacks: 0, cost_usd: 0 };
    const series: Array<{
      minute: number;
      requests: number;
      fallbacks: number;
      fallback_rate: number | null;
    }> = [];
    for (let offset = 0; offset < HOUR_MINUTES; offset++) {
      const [error, raw] = replies[routeIndex * HOUR_MINUTES + offset] ?? [
        null,
        {} as Record<string, string>,
      ];
      if (error) throw error;
      const count = (field: string) => Number(raw?.[field] ?? 0) || 0;
      const requests = count("requests");
      const fallbacks = count("fallbacks");
      totals.requests += requests;
      totals.succeeded += count("succeeded");
      totals.failed += count("failed");
      totals.fallbacks += fallbacks;
      totals.cost_usd += count("cost_usd");
      series.push({
        minute: (firstMinute + offset) * 60,
        requests,
        fallbacks,
        fallback_rate: requests ? fallbacks / requests : null,
      });
    }
    // Requests without a route appear only once some were made.
    if (name === DASHBOARD_NO_ROUTE && totals.requests === 0) return;
    routes[name] = {
      window_s: HOUR_MINUTES * 60,
      ...totals,
      cost_usd: roundUsd(totals.cost_usd),
      fallback_rate: totals.requests ? totals.fallbacks / totals.requests : null,
      cost_per_success_usd: totals.succeeded ? roundUsd(totals.cost_usd / totals.succeeded) : null,
      series,
    };
  });
  return routes;
}

async function readSpend(deps: DashboardDeps, now: number) {
  const today = budgetPeriods(now).dayDate;
  const tenants = deps.config.openMode ? ["default"] : [...deps.config.tenants.keys()];
  const totals = await Promise.all(tenants.map((tenant) => deps.usage.read(tenant, [today])));
  return {
    date: today,
    tenants: tenants.map((tenant, index) => ({
      tenant,
      cost_usd: totals[index]?.costUsd ?? 0,
      by_route: totals[index]?.byRoute ?? {},
    })),
  };
}

async function readFailures(deps: DashboardDeps): Promise<DashboardFailure[]> {
  const entries = await deps.redis.lrange(deps.keys.dashboardFailures, 0, -1);
  const failures: DashboardFailure[] = [];
  for (const entry of entries) {
    try {
      failures.push(JSON.parse(entry) as DashboardFailure);
    } catch {
      // a malformed entry is left out
    }
  }
  return failures;
}

/**
 * GET /v1/alerts as the caller would see it (the same key), asked in process so the page makes one
 * call; null when this server has no alerts endpoint.
 */
async function readAlerts(
  app: FastifyInstance,
  authorization: string | undefined,
): Promise<unknown[] | null> {
  const response = await app.inject({
    method: "GET",
    url: "/v1/alerts",
    headers: authorization ? { authorization } : {},
  });
  if (response.statusCode !== 200) return null;
  const body = response.json() as { data?: unknown };
  return Array.isArray(body.data) ? body.data : null;
}
