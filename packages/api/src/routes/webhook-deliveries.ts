import { assertOutboundUrl, type HostResolver, UrlRejectedError } from "@cascade/engine";
import {
  type Config,
  DELIVERY_STATUSES,
  enqueueWebhook,
  type JobObject,
  listObject,
  type WebhookDelivery,
  type WebhookDeliveryStore,
  type WebhookQueue,
} from "@cascade/shared";
import { Job } from "bullmq";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { badRequest, HttpError, notFound, unknownCursor } from "../plugins/http-error.js";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";

export const MAX_DELIVERY_LIST = 1000;

/** What the jobs routes need from webhooks: the URL check at enqueue, and `job.cancelled`. */
export interface ApiWebhooks {
  /** Throws a 400 naming `webhook.url` when the URL may not be called. */
  checkUrl(url: string): Promise<void>;
  /** Queues `job.cancelled` for a job being cancelled while queued (no-op without a webhook); throws when it cannot. */
  jobCancelled(tenant: string, job: JobObject, now: number): Promise<void>;
}

export function createApiWebhooks(deps: {
  config: Config;
  queue: WebhookQueue;
  resolve?: HostResolver;
}): ApiWebhooks {
  const { config, queue } = deps;
  return {
    async checkUrl(url) {
      try {
        await assertOutboundUrl(url, {
          allowPrivateNetworks: config.file.webhooks.allow_private_networks,
          ...(deps.resolve ? { resolve: deps.resolve } : {}),
        });
      } catch (error) {
        if (error instanceof UrlRejectedError)
          throw badRequest(`webhook.url: ${error.message}`, "webhook.url");
        throw error;
      }
    },
    async jobCancelled(tenant, job, now) {
      // Throws when it could not: the cancel does not happen, and the client is answered 503.
      await enqueueWebhook(queue, config, tenant, job, now);
    },
  };
}

/** `?status=&limit=` of a delivery list (tenants' and the operators' alert deliveries alike). */
export const deliveryListQuery = z.object({
  status: z
    .enum(DELIVERY_STATUSES, { error: `status must be one of ${DELIVERY_STATUSES.join(", ")}` })
    .optional(),
  limit: z.coerce
    .number({ error: "limit must be a number" })
    .int("limit must be a whole number")
    .min(1, "limit must be at least 1")
    .max(MAX_DELIVERY_LIST, `limit must be at most ${MAX_DELIVERY_LIST}`)
    .default(100),
  /** OpenAI's cursor: the last id of the page before (`last_id`). */
  after: z.string().min(1).max(200).optional(),
});

/**
 * One page of a delivery list in OpenAI's list shape (`first_id`, `last_id`, `has_more`; the next
 * page is `?after=<last_id>`). A cursor that names no delivery of the owner is a 400 naming it.
 */
export async function deliveryPage(
  store: WebhookDeliveryStore,
  owner: string,
  query: z.infer<typeof deliveryListQuery>,
) {
  const page = await store.list(owner, query.status, query.limit, query.after);
  if (!page) throw unknownCursor("webhook delivery", query.after);
  return listObject(page);
}
export const deliveryParams = z.object({ id: z.string().min(1).max(200) });

/**
 * Sends a dead delivery again, with a fresh budget of attempts: its record moves dead → pending
 * first (compare-and-set, so two retries racing cannot both go through), then BullMQ retries its
 * failed job (which checks the job is still failed). A retry refused for any other reason puts the
 * record back to dead (409). One Redis did not answer is a 503 and leaves the record pending (the
 * retry may still run): a pending record whose job is still failed is retried as a dead one, so
 * the client's next retry repairs it. Shared by job and alert webhook deliveries.
 */
export async function retryDelivery(
  store: WebhookDeliveryStore,
  queue: WebhookQueue,
  stored: { tenant: string; delivery: WebhookDelivery },
  id: string,
  label: string,
): Promise<WebhookDelivery> {
  const conflict = (message: string) =>
    new HttpError(409, "conflict_error", message, undefined, { "retry-after": "1" });
  let pending: WebhookDelivery | undefined;
  let repairing = false;
  if (stored.delivery.status === "dead") {
    pending = await store.move(stored.tenant, id, "dead", "pending");
    if (!pending) throw conflict(`${label} ${id} is being retried already`);
  } else if (stored.delivery.status === "pending" && (await queue.getJobState(id)) === "failed") {
    // Left pending by a retry Redis did not answer, its job never retried.
    repairing = true;
    pending = stored.delivery;
  } else {
    throw conflict(`${label} ${id} is ${stored.delivery.status}; only dead deliveries can be retried`);
  }
  try {
    const job = await Job.fromId(queue, id);
    if (!job) throw new Error("its queued payload has expired");
    // BullMQ checks the job is still failed; a fresh budget of max_attempts deliveries.
    await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
  } catch (error) {
    // Redis did not answer: a 503 with Retry-After, as for any request while it is away.
    if (isRedisUnavailableError(error)) throw error;
    // Back to dead unless another retry (a repair racing this one) has already requeued the job.
    if (!repairing && ["failed", "unknown"].includes(await queue.getJobState(id))) {
      await store.move(stored.tenant, id, "pending", "dead");
    }
    throw conflict(`${label} ${id} cannot be retried right now: ${(error as Error).message}`);
  }
  return pending;
}

/**
 * GET /v1/webhook-deliveries (the tenant's own, newest first) and
 * POST /v1/webhook-deliveries/:id/retry (a dead delivery, again, with a fresh attempts budget).
 */
export function registerWebhookDeliveryRoutes(
  app: FastifyInstance,
  deps: { store: WebhookDeliveryStore; queue: WebhookQueue },
): void {
  const { store, queue } = deps;
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get("/v1/webhook-deliveries", { schema: { querystring: deliveryListQuery } }, async (request) => {
    return deliveryPage(store, request.tenant, request.query);
  });

  routes.post(
    "/v1/webhook-deliveries/:id/retry",
    { schema: { params: deliveryParams } },
    async (request, reply) => {
      const { id } = request.params;
      const stored = await store.get(id);
      if (!stored || stored.tenant !== request.tenant) throw notFound(`no webhook delivery with id ${id}`);
      const pending = await retryDelivery(store, queue, stored, id, "webhook delivery");
      return reply.code(202).send(pending);
    },
  );
}
