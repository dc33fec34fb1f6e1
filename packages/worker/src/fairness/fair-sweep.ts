import type { FairTags, Logger } from "@cascade/shared";

/** How often a worker offers to sweep; one worker of all actually sweeps per interval (Redis time). */
export const FAIR_SWEEP_INTERVAL_MS = 10_000;

/**
 * Starts the fair-share sweep (FairTags.sweep): every interval, jobs added across a rebase with a
 * priority from before it are put back in line. Returns the stop function.
 */
export function startFairSweep(
  fairTags: FairTags,
  logger: Logger,
  intervalMs = FAIR_SWEEP_INTERVAL_MS,
): () => void {
  const timer = setInterval(() => {
    fairTags
      // A little under the interval, so that a worker whose timer fires late still finds it due.
      .sweep(intervalMs - 500)
      .then((moved) => {
        if (moved > 0)
          logger.info({ jobs: moved }, "fair share: put jobs queued across a rebase back in line");
      })
      .catch((error) => logger.warn({ err: error }, "fair share sweep failed"));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
