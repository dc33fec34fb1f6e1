import type { Attempt } from "@cascade/shared";
import type { ChainContext } from "./chain-context.js";

/**
 * The structured line of one attempt, and its count in the process's metrics: `current_model` and `fallback_reason` are the fields
 * operators filter on. An auth error is a configuration fault, so it is logged as an error.
 *
 * A success on the job's first attempt is the common case and tells an operator nothing the
 * metrics (`cascade_attempts_total`, `cascade_jobs_total`) and the job object do not: it is logged
 * at `debug` (docs/decisions/0023). A success after earlier attempts (a retry, a fallback, a skip)
 * stays at `info`: it ends the story the `warn` lines of those attempts began. Failed and skipped
 * attempts are `warn` (or `error`) as before. `firstAttempt` is whether no attempt of this job
 * came before this one (in this run or a previous one).
 */
export function logAttempt(
  context: ChainContext,
  attempt: Attempt,
  hopIndex: number,
  firstAttempt: boolean,
): void {
  const { logger } = context;
  context.metrics?.attempt(attempt);
  const success = attempt.outcome === "success";
  if (success && firstAttempt && !logger.isLevelEnabled("debug")) return;
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
  if (success) {
    if (firstAttempt) logger.debug(fields, "hop succeeded");
    else logger.info(fields, "hop succeeded");
  } else if (attempt.reason === "auth_error") {
    logger.error(
      { ...fields, detail: attempt.message },
      "hop failed: provider rejected our credentials (configuration fault)",
    );
  } else logger.warn({ ...fields, detail: attempt.message }, `hop ${attempt.outcome}: ${attempt.reason}`);
}
