import type { JobsOptions, Queue } from "bullmq";
import type { Config } from "../config/load.js";
import type { JobObject } from "../schemas/job.js";
import { buildWebhookJob, WEBHOOK_BACKOFF_TYPE, WEBHOOK_JOB_NAME, type WebhookJobData } from "./delivery.js";

export type WebhookQueue = Queue<WebhookJobData, { status: number }>;

/**
 * BullMQ options of a delivery: its id is the delivery id (so a duplicate enqueue is a no-op),
 * `max_attempts` deliveries spaced by the webhook worker's schedule-based backoff, and the job
 * kept as long as completion jobs are, since a dead delivery's retry needs its payload.
 */
export function webhookJobOptions(config: Config, deliveryId: string): JobsOptions {
  const age = config.settings.JOB_RETENTION_S;
  return {
    jobId: deliveryId,
    attempts: config.file.webhooks.max_attempts,
    backoff: { type: WEBHOOK_BACKOFF_TYPE },
    removeOnComplete: { age },
    removeOnFail: { age },
  };
}

/**
 * Queues the webhook of a job that has just ended: one `queue.add` (no other Redis command), or
 * nothing when the job has no webhook. Returns the delivery's job data when one was queued.
 */
export async function enqueueWebhook(
  queue: WebhookQueue,
  config: Config,
  tenant: string,
  job: JobObject,
  now: number,
): Promise<WebhookJobData | undefined> {
  const data = buildWebhookJob(tenant, job, now);
  if (!data) return undefined;
  await queue.add(WEBHOOK_JOB_NAME, data, webhookJobOptions(config, data.delivery_id));
  return data;
}
