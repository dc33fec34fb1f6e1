import type { ChainableCommander } from "ioredis";
import type { Attempt } from "../schemas/job.js";
import { HashIncrementWrites } from "./batched-writes.js";
import {
  type FinishedRequest,
  fellBack,
  type RequestObserver,
  type StrayCharge,
} from "./finished-request.js";

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
  attempts: Array<
    Pick<Attempt, "model" | "provider" | "deployment" | "outcome" | "reason" | "http_status" | "duration_ms">
  >;
}

export const minuteOf = (ms: number) => Math.floor(ms / 60_000);

/**
 * Keeps what GET /v1/dashboard shows that no other record holds: per route and UTC minute, the
 * finished requests, their outcomes, fallbacks and cost (hashes that expire after two hours), and
 * the last few failed requests with their attempt trail. Added up in memory and written every
 * REQUEST_COUNTS_FLUSH_MS in one MULTI (batched-writes.ts; `close()` on shutdown writes the
 * rest); a failed write is reported to `onError`.
 */
export class DashboardRecorder extends HashIncrementWrites implements RequestObserver {
  /** Failed requests not written yet, oldest first (at most the number the list keeps). */
  private failures: string[] = [];

  protected override get pending(): boolean {
    return super.pending || this.failures.length > 0;
  }

  protected override drainInto(transaction: ChainableCommander): unknown {
    // A copy: failures gathered while the write is out are not the write's.
    const held = { counts: super.drainInto(transaction), failures: [...this.failures] };
    if (this.failures.length > 0) {
      // LPUSH of several values puts the last at the head: newest first, as one push per failure did.
      transaction.lpush(this.keys.dashboardFailures, ...this.failures);
      transaction.ltrim(this.keys.dashboardFailures, 0, DASHBOARD_FAILURES_KEPT - 1);
      this.failures = [];
    }
    return held;
  }

  protected override restore(held: unknown): boolean {
    const { counts, failures } = held as { counts: unknown; failures: string[] };
    if (!super.restore(counts)) return false;
    // Older than what failed since: behind it, within what the list keeps.
    this.failures = [...failures, ...this.failures].slice(-DASHBOARD_FAILURES_KEPT);
    return true;
  }

  finished(request: FinishedRequest): void {
    // Cancelled requests are not finished answers: the fallback rate's denominator, here as in the
    // alerts' window and usage counts, is succeeded + failed.
    if (request.status === "cancelled" && request.costUsd <= 0) return;
    const key = this.keys.dashboardRouteMinute(
      request.route ?? DASHBOARD_NO_ROUTE,
      minuteOf(request.finishedAtMs),
    );
    const ttl = DASHBOARD_MINUTE_TTL_S;
    if (request.status !== "cancelled") {
      this.increments.count(key, "requests", 1, ttl);
      this.increments.count(key, request.status, 1, ttl);
    }
    if (fellBack(request)) this.increments.count(key, "fallbacks", 1, ttl);
    if (request.costUsd > 0) this.increments.add(key, "cost_usd", request.costUsd, ttl);
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
          // A pooled model's deployment: which of its keys or endpoints failed.
          ...(attempt.deployment !== undefined ? { deployment: attempt.deployment } : {}),
          outcome: attempt.outcome,
          ...(attempt.reason !== undefined ? { reason: attempt.reason } : {}),
          ...(attempt.http_status !== undefined ? { http_status: attempt.http_status } : {}),
          duration_ms: attempt.duration_ms,
        })),
      };
      this.failures.push(JSON.stringify(failure));
      if (this.failures.length > DASHBOARD_FAILURES_KEPT) this.failures.shift();
    }
    this.gathered();
  }

  charged(charge: StrayCharge): void {
    if (!(charge.costUsd > 0)) return;
    const key = this.keys.dashboardRouteMinute(charge.route ?? DASHBOARD_NO_ROUTE, minuteOf(charge.atMs));
    this.increments.add(key, "cost_usd", charge.costUsd, DASHBOARD_MINUTE_TTL_S);
    this.gathered();
  }
}
