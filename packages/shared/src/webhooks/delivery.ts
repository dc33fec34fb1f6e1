import { z } from "zod";
import type { JobObject, JobStatus } from "../schemas/job.js";

export const WEBHOOK_EVENT_TYPES = [
  "job.succeeded",
  "job.failed",
  "job.cancelled",
  "alert.fired",
  "alert.resolved",
] as const;

/**
 * The owner of alert deliveries (operators' webhooks): a delivery owner like a tenant, with its
 * own dead list, that no tenant can be (tenant ids start with a letter or digit).
 */
export const OPERATORS_OWNER = "_operators";
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const DELIVERY_STATUSES = ["pending", "delivered", "dead"] as const;
/** pending: queued, in flight or waiting for a retry; delivered: a 2xx came back; dead: given up. */
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** BullMQ job name of webhook deliveries, and the custom backoff type their retries use. */
export const WEBHOOK_JOB_NAME = "webhook";
export const WEBHOOK_BACKOFF_TYPE = "webhook-schedule";

/** The body POSTed to the job's webhook URL. */
export interface WebhookEvent {
  type: WebhookEventType;
  /** When the job ended, ISO-8601. */
  timestamp: string;
  data: JobObject;
}

/** What a delivery's BullMQ job carries; validated again when a webhook worker takes it. */
export const webhookJobDataSchema = z.object({
  v: z.literal(1),
  delivery_id: z.string().min(1),
  /** `webhook-id` header: the same on every attempt, so receivers can deduplicate. */
  webhook_id: z.string().min(1),
  tenant: z.string().min(1),
  job_id: z.string(),
  url: z.string(),
  event_type: z.enum(WEBHOOK_EVENT_TYPES),
  /** Unix seconds. */
  created_at: z.number().int(),
  /**
   * The enqueuer's account of the job. The webhook worker sends the job as stored once it has
   * ended, kept in the delivery record from the first send on so every retry sends the same
   * bytes; this body is sent only when the job has left Redis by then (ADR 0014).
   */
  body: z.string(),
});
export type WebhookJobData = z.infer<typeof webhookJobDataSchema>;

/** The public delivery object of GET /v1/webhook-deliveries. */
export interface WebhookDelivery {
  object: "webhook_delivery";
  id: string;
  job_id: string;
  url: string;
  event_type: WebhookEventType;
  status: DeliveryStatus;
  /** HTTP deliveries made so far, manual retries included. */
  attempts: number;
  /** HTTP status of the last attempt; null before the first or when no response came back. */
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  /** The `webhook-id` header every attempt of this delivery carries. */
  webhook_id: string;
}

const EVENT_BY_STATUS: Partial<Record<JobStatus, WebhookEventType>> = {
  succeeded: "job.succeeded",
  failed: "job.failed",
  cancelled: "job.cancelled",
};

/**
 * The delivery a terminal job gets, or undefined when the job has no webhook or has not ended.
 * A job ends once, so its delivery id (and `webhook-id`) derive from the job id: enqueueing the
 * same job's event twice (an at-least-once re-run) finds the existing BullMQ job and adds nothing.
 */
export function buildWebhookJob(tenant: string, job: JobObject, now: number): WebhookJobData | undefined {
  const type = EVENT_BY_STATUS[job.status];
  if (!job.webhook || !type) return undefined;
  const suffix = job.id.replace(/^job_/, "");
  const event: WebhookEvent = { type, timestamp: new Date(now).toISOString(), data: job };
  return {
    v: 1,
    delivery_id: `whd_${suffix}`,
    webhook_id: `msg_${suffix}`,
    tenant,
    job_id: job.id,
    url: job.webhook.url,
    event_type: type,
    created_at: Math.floor(now / 1000),
    body: JSON.stringify(event),
  };
}
