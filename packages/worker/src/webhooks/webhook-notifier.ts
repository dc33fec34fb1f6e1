import {
  type Clock,
  type Config,
  enqueueWebhook,
  finishedJobObject,
  type JobData,
  type JobOutcome,
  type Logger,
  type WebhookQueue,
} from "@cascade/shared";
import type { Job } from "bullmq";

export interface WebhookNotifier {
  /** The completion worker's `onFinished` hook: queues the job's webhook, if it has one. */
  onFinished(job: Job<JobData, JobOutcome>, data: JobData, outcome: JobOutcome): Promise<void>;
}

/**
 * Queues webhook deliveries for jobs a completion worker finishes. Jobs without a webhook cost
 * nothing; a job with one costs a single `queue.add`, made before BullMQ records the outcome so a
 * crash in between re-runs the job and re-queues the delivery (the delivery id derives from the
 * job id, so a duplicate, or the enqueue of a run that lost its lock, adds nothing). What the
 * webhook says is not decided here: the webhook worker sends the job as Redis stored it, once it
 * has ended (ADR 0014).
 */
/** Tries to queue a webhook over about 15 s (250 ms doubling, capped at 4 s) before giving up. */
const ENQUEUE_ATTEMPTS = 6;

export function createWebhookNotifier(options: {
  config: Config;
  /** The process's webhook queue (its owner closes it). */
  queue: WebhookQueue;
  logger: Logger;
  clock: Clock;
}): WebhookNotifier {
  const { config, queue, logger, clock } = options;
  return {
    async onFinished(job, data, outcome) {
      if (!data.webhook) return;
      const jobObject = finishedJobObject(job.id as string, data, outcome);
      // A Redis blip or failover lasts seconds: try again within that (the job keeps its lock
      // meanwhile), then fail the run so BullMQ retries the job rather than lose its webhook.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await enqueueWebhook(queue, config, data.tenant, jobObject, clock.now());
          return;
        } catch (error) {
          if (attempt >= ENQUEUE_ATTEMPTS) throw error;
          logger.warn(
            { job_id: job.id, tenant: data.tenant, err: (error as Error).message, attempt },
            "could not queue the job's webhook yet; trying again",
          );
          await new Promise((resolve) => setTimeout(resolve, Math.min(4_000, 250 * 2 ** attempt)));
        }
      }
    },
  };
}
