import {
  OPERATORS_OWNER,
  WEBHOOK_EVENT_TYPES,
  type WebhookDeliveryStore,
  type WebhookEvent,
  type WebhookEventType,
  type WebhookJobData,
} from "@cascade/shared";
import type { StoredJobReader } from "./stored-job.js";

/** What a delivery sends now: a body (and its event type), or nothing yet. */
export type DeliveryBody = { kind: "send"; body: string; eventType: WebhookEventType } | { kind: "wait" };

function eventTypeOf(body: string, fallback: WebhookEventType): WebhookEventType {
  try {
    const type = (JSON.parse(body) as { type?: unknown }).type;
    return WEBHOOK_EVENT_TYPES.find((each) => each === type) ?? fallback;
  } catch {
    return fallback;
  }
}

/**
 * The body a delivery sends: on its first send, the job as Redis stores it once it has ended
 * (so the webhook and GET /v1/jobs/:id agree, whichever run enqueued the delivery: a run that
 * lost its lock enqueues the same delivery id as the run whose result BullMQ keeps); `wait`
 * while the job has not ended in Redis. That body is kept in the delivery record and every later
 * attempt sends it again byte for byte. A job gone from Redis (past its retention) is reported
 * with the body its enqueuer built, the only account left.
 */
export async function deliveryBody(
  store: WebhookDeliveryStore,
  reader: StoredJobReader,
  data: WebhookJobData,
): Promise<DeliveryBody> {
  const kept = await store.sentBody(data.delivery_id);
  if (kept !== undefined) return { kind: "send", body: kept, eventType: eventTypeOf(kept, data.event_type) };
  // An alert has no stored job: its body is the alert as the evaluator saw it at the transition.
  if (data.tenant === OPERATORS_OWNER) {
    return {
      kind: "send",
      body: await store.keepBody(data.delivery_id, data.body),
      eventType: data.event_type,
    };
  }
  const stored = await reader.read(data.job_id);
  if (stored.kind === "not_terminal") return { kind: "wait" };
  let body = data.body;
  if (stored.kind === "terminal") {
    const event: WebhookEvent = {
      type: `job.${stored.job.status}` as WebhookEventType,
      timestamp: new Date(stored.endedAt).toISOString(),
      data: stored.job,
    };
    body = JSON.stringify(event);
  }
  const sent = await store.keepBody(data.delivery_id, body);
  return { kind: "send", body: sent, eventType: eventTypeOf(sent, data.event_type) };
}
