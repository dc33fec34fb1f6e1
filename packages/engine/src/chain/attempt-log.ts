import type { Attempt } from "@cascade/shared";
import type { ChainContext } from "./chain-context.js";
import { withoutPromptText } from "./prompt-scrub.js";

/**
 * The structured line of one attempt, and its count in the process's metrics: `current_model` and `fallback_reason` are the fields
 * operators filter on. An auth error is a configuration fault, so it is logged as an error.
 */
export function logAttempt(context: ChainContext, attempt: Attempt, hopIndex: number): void {
  const { logger } = context;
  context.metrics?.attempt(attempt);
  const fields = {
    job_id: context.jobId,
    tenant: context.data.tenant,
    route: context.data.route,
    hop: hopIndex,
    current_model: attempt.model,
    provider: attempt.provider,
    outcome: attempt.outcome,
    fallback_reason: attempt.reason,
    http_status: attempt.http_status,
    duration_ms: attempt.duration_ms,
  };
  if (attempt.outcome === "success") {
    logger.info(fields, "hop succeeded");
    return;
  }
  // An upstream's error text may quote the request: prompts stay out of the log.
  const detail =
    attempt.outcome === "error" && attempt.message !== undefined
      ? withoutPromptText(attempt.message, context.data.request)
      : attempt.message;
  // A call stopped by its job's interruption (cancel, lock loss, shutdown): no failure of its own.
  if (attempt.reason === undefined) logger.info({ ...fields, detail }, "hop stopped");
  else if (attempt.reason === "auth_error") {
    logger.error(
      { ...fields, detail },
      "hop failed: provider rejected our credentials (configuration fault)",
    );
  } else logger.warn({ ...fields, detail }, `hop ${attempt.outcome}: ${attempt.reason}`);
}
