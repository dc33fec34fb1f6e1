import { isStoppedAttempt } from "@cascade/shared";
import type { ChainContext, ChainResult } from "./chain-context.js";
import { ChainProgress } from "./chain-progress.js";
import { runHop } from "./hop-runner.js";
import { interruptedResult, JobInterruption } from "./interruption.js";
import { failedOutcome } from "./job-outcome.js";
import { estimateRequest } from "./prechecks.js";

/**
 * Runs a job through its fallback chain from where its progress says, and returns either the
 * terminal outcome or a time to resume at (a wait too long to hold a worker slot for). Each hop
 * is run by runHop; an interruption, wherever it strikes, becomes the result in one place.
 */
export async function runChain(context: ChainContext): Promise<ChainResult> {
  const run = new ChainProgress(context);
  const { progress } = run;
  const estimate = estimateRequest(context.data.request);
  context.events?.status("running");
  try {
    for (; progress.hop < context.data.chain.length; progress.hop += 1, progress.tries = 0) {
      const step = await runHop(context, run, estimate);
      if (step !== "next") return step;
      run.clearFailedDeployments();
    }
  } catch (caught) {
    if (caught instanceof JobInterruption) return interruptedResult(caught, run, context);
    throw caught;
  }
  // A shown answer no hop could continue: the caller hears of the failure that broke it off.
  if (run.continued) {
    return { kind: "finished", outcome: failedOutcome(progress, run.continued.error, context.clock.now()) };
  }
  // A skip's message says what the request needs that the model lacks (no provider said it).
  const reasons = progress.attempts.map(
    (attempt) =>
      `${attempt.model}: ${attempt.reason ?? (isStoppedAttempt(attempt) ? "stopped" : attempt.outcome)}${
        attempt.outcome === "skipped" && attempt.reason === "capability_missing" && attempt.message
          ? ` (${attempt.message})`
          : ""
      }`,
  );
  return {
    kind: "finished",
    outcome: failedOutcome(
      progress,
      {
        type: "all_models_failed",
        message: `every model in the chain failed (${reasons.join("; ")})`.slice(0, 1000),
      },
      context.clock.now(),
    ),
  };
}
