import type { Reason } from "../config/schema.js";
import { type Attempt, isStoppedAttempt, type JobOutcome } from "../schemas/job.js";

/** The error type of a gateway request its process stopped, as it shut down, before its answer. */
export const SHUTTING_DOWN = "shutting_down";

/** A run that did not succeed, as an OpenAI client sees it: status, error type and code. */
export interface OutcomeHttpError {
  status: number;
  /** OpenAI's error type (`invalid_request_error`, `rate_limit_error`, `insufficient_quota`, `api_error`). */
  type:
    | "invalid_request_error"
    | "rate_limit_error"
    | "insufficient_quota"
    | "api_error"
    | "service_unavailable_error";
  code: string;
  message: string;
  /** Seconds, for a 429 whose limits refill at a known time, and a 503 of a process shutting down. */
  retryAfterS?: number;
  /** False for a 502 that asking again cannot change: every hop refused the request itself. */
  retryable?: false;
}

/** Skips that say the request cannot run on a hop, whatever the hop's health. */
const UNFIT: ReadonlySet<Reason | undefined> = new Set([
  "capability_missing",
  "context_length",
  "price_ceiling",
]);

/**
 * Failures that may not happen again: a provider's outage, a breaker, a limit. A run whose hops
 * all failed otherwise (the upstream refused a parameter or the key, a content filter) fails the
 * same way when asked again at once.
 */
const TRANSIENT: ReadonlySet<Reason | undefined> = new Set([
  "rate_limited",
  "server_error",
  "timeout",
  "network_error",
  "invalid_response",
  "circuit_open",
  "over_budget",
]);

/** OpenAI's codes where it has one for the same thing; the contract's reason otherwise. */
const UNFIT_CODES: Record<string, string> = {
  price_ceiling: "price_ceiling",
  context_length: "context_length_exceeded",
  capability_missing: "capability_missing",
};

/** The first step of a cooldown after a 429 that named no time (contract, "Cooldowns"). */
const MIN_COOLDOWN_S = 1;

/**
 * Seconds until the earliest of the run's rate-limited targets may be tried again: each target's
 * (provider, deployment: what a 429 cools down) latest wait only, since a later 429 there replaced
 * the cooldown an earlier one set (1 s, then 2 s: the first would understate it), whichever hop
 * of the chain met it.
 */
function earliestRefillS(attempts: Attempt[]): number | undefined {
  const latest = new Map<string, number>();
  for (const attempt of attempts) {
    if (attempt.reason !== "rate_limited" || attempt.retry_after_ms === undefined) continue;
    latest.set(`${attempt.provider}\n${attempt.deployment ?? ""}`, attempt.retry_after_ms);
  }
  if (!latest.size) return undefined;
  return Math.max(1, Math.ceil(Math.min(...latest.values()) / 1000));
}

/**
 * A failed run as the HTTP answer the contract's gateway table gives it (section "Gateway"; batch
 * error lines use it too): the request's own fault
 * is a 400, limits are a 429 (with Retry-After from the earliest refill), a spent budget a 429
 * `insufficient_quota`, and every hop failing upstream a 502.
 */
export function httpErrorOf(outcome: JobOutcome): OutcomeHttpError {
  const error = outcome.error ?? { type: "all_models_failed", message: "every model in the chain failed" };
  const message = error.message;
  if (error.type === "bad_request" || error.type === "content_filter") {
    return { status: 400, type: "invalid_request_error", code: error.type, message };
  }
  // The process answering it was stopping (a deploy): another one will take the request.
  if (error.type === SHUTTING_DOWN) {
    return { status: 503, type: "service_unavailable_error", code: SHUTTING_DOWN, message, retryAfterS: 1 };
  }
  if (error.type !== "all_models_failed") {
    return { status: 502, type: "api_error", code: error.type, message };
  }
  const attempts = outcome.attempts.filter((attempt) => !isStoppedAttempt(attempt));
  const usable = attempts.filter((attempt) => !UNFIT.has(attempt.reason));
  if (!usable.length) {
    const reason =
      (["price_ceiling", "context_length", "capability_missing"] as const).find((candidate) =>
        attempts.some((attempt) => attempt.reason === candidate),
      ) ?? "capability_missing";
    return { status: 400, type: "invalid_request_error", code: UNFIT_CODES[reason] ?? reason, message };
  }
  const limited = usable.every(
    (attempt) => attempt.reason === "rate_limited" || attempt.reason === "over_budget",
  );
  if (limited && usable.some((attempt) => attempt.reason === "rate_limited")) {
    // A 429's attempt carries the cooldown its settlement set (the provider's hint, else 1 s
    // doubling on consecutive 429s: contract, "Cooldowns"). One without (its settlement failed)
    // says 1 s, the least a cooldown lasts. The contract's 429 always carries Retry-After.
    const retryAfterS = earliestRefillS(usable) ?? MIN_COOLDOWN_S;
    return { status: 429, type: "rate_limit_error", code: "rate_limited", message, retryAfterS };
  }
  if (limited) return { status: 429, type: "insufficient_quota", code: "over_budget", message };
  const failed = { status: 502, type: "api_error", code: "all_models_failed", message } as const;
  return usable.some((attempt) => TRANSIENT.has(attempt.reason)) ? failed : { ...failed, retryable: false };
}
