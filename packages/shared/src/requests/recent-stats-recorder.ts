import type { ChainableCommander } from "ioredis";
import { deploymentKey } from "../redis/keys.js";
import { STATS_KINDS, staleStatsFields } from "../resilience/redis-shape.js";
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
  protected override drainInto(transaction: ChainableCommander): unknown {
    if (this.unpruned.size > 0) {
      const stale = staleStatsFields(this.minute);
      for (const key of this.unpruned) transaction.hdel(key, ...stale);
      this.unpruned.clear();
    }
    return super.drainInto(transaction);
  }

  /** The current minute's field names, made once a minute (this runs for every request). */
  private minute = -1;
  private requestsField = "";
  private fallbacksField = "";
  /** Keys written this minute whose stale fields this process has not deleted yet (as the scripts do). */
  private readonly unpruned = new Set<string>();
  private readonly pruned = new Set<string>();
  /** Stats keys by scope and id, made once per subject. */
  private readonly statsKeys = {
    model: new Map<string, string>(),
    provider: new Map<string, string>(),
    deployment: new Map<string, string>(),
  };

  finished(request: FinishedRequest): void {
    if (request.status !== "succeeded" && request.status !== "failed") return;
    const { attempts } = request;
    if (attempts.length === 0) return;
    const minute = minuteOf(request.finishedAtMs);
    if (minute !== this.minute) {
      this.minute = minute;
      this.pruned.clear();
      this.requestsField = `${minute}:${STATS_KINDS.requests}`;
      this.fallbacksField = `${minute}:${STATS_KINDS.fallbacks}`;
    }
    const answered = request.status === "succeeded";
    // Most requests make one attempt: no set of subjects seen for those.
    const seen = attempts.length > 1 ? new Set<string>() : undefined;
    for (const attempt of attempts) {
      const otherModel = answered && request.model !== attempt.model;
      this.count(seen, "model", attempt.model, otherModel);
      this.count(seen, "provider", attempt.provider, answered && request.provider !== attempt.provider);
      if (attempt.deployment !== undefined) {
        this.count(seen, "deployment", deploymentKey(attempt.model, attempt.deployment), otherModel);
      }
    }
    this.gathered();
  }

  /** One request that tried `id` (once per request, however many attempts it made there). */
  private count(
    seen: Set<string> | undefined,
    scope: "model" | "provider" | "deployment",
    id: string,
    fellBack: boolean,
  ): void {
    const known = this.statsKeys[scope];
    let key = known.get(id);
    if (key === undefined) {
      key = this.keys.stats(scope, id);
      // Bounded by the config's providers, models and deployments (ids come from attempts).
      known.set(id, key);
    }
    if (seen) {
      if (seen.has(key)) return;
      seen.add(key);
    }
    if (!this.pruned.has(key)) {
      this.pruned.add(key);
      this.unpruned.add(key);
    }
    this.increments.count(key, this.requestsField, 1, STATS_TTL_S);
    if (fellBack) this.increments.count(key, this.fallbacksField, 1, STATS_TTL_S);
  }
}
