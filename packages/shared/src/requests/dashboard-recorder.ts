import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import type { Attempt } from "../schemas/job.js";
import { type FinishedRequest, fellBack, type RequestObserver } from "./finished-request.js";

/** How long a route's per-minute counts are kept (the dashboard shows the last hour). */
export const DASHBOARD_MINUTE_TTL_S = 2 * 3600;
/** How many recent failed requests the dashboard keeps (every tenant together). */
export const DASHBOARD_FAILURES_KEPT = 20;
/** The route name under which requests made with a `models` list (no route) are counted. */
export const DASHBOARD_NO_ROUTE = "(models)";

/** One failed request as the dashboard lists it (admin only: every tenant's). */
export interface DashboardFailure {
  door: FinishedRequest["door"];
  tenant: string;
  route: string | null;
  first_model: string;
  cost_usd: number;
  created_at: number;
  finished_at: number;
  attempts: Array<Pick<Attempt, "model" | "provider" | "outcome" | "reason" | "http_status" | "duration_ms">>;
}

export const minuteOf = (ms: number) => Math.floor(ms / 60_000);

/**
 * Keeps what GET /v1/dashboard shows that no other record holds: per route and UTC minute, the
 * finished requests, their outcomes, fallbacks and cost (hashes that expire after two hours), and
 * the last few failed requests with their attempt trail. Writes are fired and forgotten (an
 * observer must not block); a failed write is reported to `onError`.
 */
export class DashboardRecorder implements RequestObserver {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  finished(request: FinishedRequest): void {
    const key = this.keys.dashboardRouteMinute(
      request.route ?? DASHBOARD_NO_ROUTE,
      minuteOf(request.finishedAtMs),
    );
    // Cancelled requests are not finished answers: the fallback rate's denominator, here as in the
    // alerts' window and usage counts, is succeeded + failed.
    if (request.status === "cancelled" && request.costUsd <= 0) return;
    const pipeline = this.redis.pipeline();
    if (request.status !== "cancelled") pipeline.hincrby(key, "requests", 1);
    if (request.status === "succeeded") pipeline.hincrby(key, "succeeded", 1);
    if (request.status === "failed") pipeline.hincrby(key, "failed", 1);
    if (fellBack(request)) pipeline.hincrby(key, "fallbacks", 1);
    if (request.costUsd > 0) pipeline.hincrbyfloat(key, "cost_usd", request.costUsd);
    pipeline.expire(key, DASHBOARD_MINUTE_TTL_S);
    if (request.status === "failed") {
      const failure: DashboardFailure = {
        door: request.door,
        tenant: request.tenant,
        route: request.route,
        first_model: request.firstModel,
        cost_usd: request.costUsd,
        created_at: request.createdAtMs,
        finished_at: request.finishedAtMs,
        attempts: request.attempts.slice(-20).map((attempt) => ({
          model: attempt.model,
          provider: attempt.provider,
          outcome: attempt.outcome,
          ...(attempt.reason !== undefined ? { reason: attempt.reason } : {}),
          ...(attempt.http_status !== undefined ? { http_status: attempt.http_status } : {}),
          duration_ms: attempt.duration_ms,
        })),
      };
      pipeline.lpush(this.keys.dashboardFailures, JSON.stringify(failure));
      pipeline.ltrim(this.keys.dashboardFailures, 0, DASHBOARD_FAILURES_KEPT - 1);
    }
    pipeline.exec().then(
      (replies) => {
        const failed = replies?.find(([error]) => error);
        if (failed?.[0]) this.onError(failed[0]);
      },
      (error: unknown) => this.onError(error),
    );
  }
}
