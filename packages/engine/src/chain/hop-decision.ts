import { DEFAULT_RETRY_ON, type HopConfig, isStoppedAttempt, type JobProgress } from "@cascade/shared";
import { ProviderError } from "../providers/provider-error.js";
import { backoffDelayMs } from "./backoff.js";
import type { ChainContext } from "./chain-context.js";

export type HopDecision =
  | { action: "retry"; delayMs: number }
  | { action: "next" }
  | { action: "fail"; type: string };

/**
 * What follows a failed call: the job fails at once (the request itself is wrong, or the route
 * refuses filtered content), the hop is tried again after a backoff (a reason in its `retry_on`,
 * tries left), or the chain moves on.
 */
export function decideAfterError(
  context: ChainContext,
  hop: HopConfig,
  error: ProviderError,
  retriesLeft: number,
  retryNumber: number,
): HopDecision {
  const { policy, deadline_at: deadline } = context.data;
  if (error.reason === "bad_request" && !error.providerSpecific && policy.on_bad_request === "fail") {
    return { action: "fail", type: "bad_request" };
  }
  if (error.reason === "content_filter" && policy.on_content_filter === "fail") {
    return { action: "fail", type: "content_filter" };
  }
  // `retry_on` (default: not `timeout`, since a silent provider stays silent) picks which of the
  // retryable reasons try the same hop again; the rest move on.
  const retryOn: readonly string[] = hop.retry_on ?? DEFAULT_RETRY_ON;
  if (!error.isRetryable || retriesLeft <= 0 || !retryOn.includes(error.reason)) return { action: "next" };
  const delayMs = backoffDelayMs(retryNumber, error.retryAfterMs, context.random);
  // A rate-limited retry waits only within the deadline. A run that sleeps its waits in process
  // (the gateway: no queue to wait in) bounds every retry by it: a caller is holding on.
  const boundByDeadline =
    error.reason === "rate_limited" || context.maxInlineWaitMs === Number.POSITIVE_INFINITY;
  if (boundByDeadline && context.clock.now() + delayMs > deadline) return { action: "next" };
  return { action: "retry", delayMs };
}

/**
 * The failure that sent a pooled hop on to its other deployments, while it is the hop's latest
 * attempt: rebuilt from that attempt, so a run resumed after a wait (the error itself gone with
 * the run that met it) decides on it the same way.
 */
export function deploymentFailureOf(progress: JobProgress, modelId: string): ProviderError | undefined {
  const failed = progress.failed_deployments;
  // A call a shutdown stopped after the failure is no failure of its own: the failure stands.
  const last = progress.attempts.findLast((attempt) => !isStoppedAttempt(attempt));
  if (!failed?.length || !last || last.outcome !== "error" || last.reason === undefined) return undefined;
  if (last.model !== modelId || last.deployment === undefined || !failed.includes(last.deployment))
    return undefined;
  return new ProviderError(last.reason, last.message ?? last.reason, {
    ...(last.http_status !== undefined ? { httpStatus: last.http_status } : {}),
    ...(last.retry_after_ms !== undefined ? { retryAfterMs: last.retry_after_ms } : {}),
  });
}
