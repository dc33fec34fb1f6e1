import type { RedisClient } from "../redis/connection.js";
import { deploymentKey, type Keys } from "../redis/keys.js";
import { STATS_KINDS } from "../resilience/redis-shape.js";
import { HashIncrementWrites } from "./batched-writes.js";
import { minuteOf } from "./dashboard-recorder.js";
import type { FinishedRequest, RequestObserver } from "./finished-request.js";

/** How long a per-minute stats field lives: as admit.lua and settle.lua keep the call counts. */
const STATS_TTL_S = 600;

/**
 * The request side of GET /v1/providers' `recent` stats (ADR 0029): per provider, model and pool
 * deployment, and per minute, the finished requests that tried it (an attempt made or skipped)
 * and, of those, the ones answered by someone else: its fallback rate, counted in requests as the
 * contract counts a route's ("a request is a job or a gateway call, never an attempt"). A retry
 * that succeeds on the same model is no fallback; neither is a pool's move to another deployment
 * of the same model (for the deployment, answered elsewhere means by another model). Failed
 * requests count in `requests` only, as in the route's rate. Calls, errors and skips (attempts)
 * are counted by admit.lua and settle.lua in the same hashes. Gathered in memory and written
 * every REQUEST_COUNTS_FLUSH_MS in one MULTI (batched-writes.ts).
 */
export class RecentStatsRecorder extends HashIncrementWrites implements RequestObserver {
  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    onError: (error: unknown) => void = () => {},
    flushMs?: number,
  ) {
    super(redis, onError, flushMs);
  }

  finished(request: FinishedRequest): void {
    if (request.status !== "succeeded" && request.status !== "failed") return;
    if (request.attempts.length === 0) return;
    const minute = minuteOf(request.finishedAtMs);
    const answered = request.status === "succeeded";
    const seen = new Set<string>();
    const count = (key: string, fellBack: boolean) => {
      if (seen.has(key)) return;
      seen.add(key);
      this.increments.count(key, `${minute}:${STATS_KINDS.requests}`, 1, STATS_TTL_S);
      if (fellBack) this.increments.count(key, `${minute}:${STATS_KINDS.fallbacks}`, 1, STATS_TTL_S);
    };
    for (const attempt of request.attempts) {
      const otherModel = answered && request.model !== attempt.model;
      count(this.keys.stats("model", attempt.model), otherModel);
      count(this.keys.stats("provider", attempt.provider), answered && request.provider !== attempt.provider);
      if (attempt.deployment !== undefined) {
        count(this.keys.stats("deployment", deploymentKey(attempt.model, attempt.deployment)), otherModel);
      }
    }
    this.gathered();
  }
}
