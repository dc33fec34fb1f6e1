import type { Keys, Logger, RedisClient } from "@cascade/shared";

/**
 * Listens for cancellations of running jobs announced on Redis pub/sub (by whichever API
 * process took the DELETE) and aborts the job here if this worker holds it.
 */
export async function listenForCancellations(
  subscriber: RedisClient,
  keys: Keys,
  logger: Logger,
  interrupt: (jobId: string) => boolean,
): Promise<void> {
  const channel = keys.cancelChannel;
  subscriber.on("message", (received: string, jobId: string) => {
    if (received !== channel) return;
    if (interrupt(jobId)) logger.info({ job_id: jobId }, "cancelling running job");
  });
  await subscriber.subscribe(channel);
}
