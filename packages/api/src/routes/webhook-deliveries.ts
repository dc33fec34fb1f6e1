import { assertOutboundUrl, type HostResolver, UrlRejectedError } from "@cascade/engine";
import {
  type Config,
  DELIVERY_STATUSES,
  enqueueWebhook,
  type JobObject,
  type Logger,
  type WebhookDeliveryStore,
  type WebhookQueue,
} from "@cascade/shared";
import { Job } from "bullmq";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { badRequest, HttpError, notFound } from "../plugins/http-error.js";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";

export const MAX_DELIVERY_LIST = 1000;

/** What the jobs routes need from webhooks: the URL check at enqueue, and `job.cancelled`. */
export interface ApiWebhooks {
  /** Throws a 400 naming `webhook.url` when the URL may not be called. */
  checkUrl(url: string): Promise<void>;
  /** Queues `job.cancelled` for a job cancelled while queued (no-op without a webhook). */
  jobCancelled(tenant: string, job: JobObject, now: number): Promise<void>;
}

export function createApiWebhooks(deps: {
  config: Config;
  queue: WebhookQueue;
  logger: Logger;
  resolve?: HostResolver;
}): ApiWebhooks {
  const { config, queue, logger } = deps;
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
      try {
        await enqueueWebhook(queue, config, tenant, job, now);
      } catch (error) {
        // The cancellation stands; only its notification is lost, and the job can still be read.
        logger.error({ job_id: job.id, tenant, err: error }, "could not queue the job.cancelled webhook");
      }
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
});
export const deliveryParams = z.object({ id: z.string().min(1).max(200) });

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
    const data = await store.list(request.tenant, request.query.status, request.query.limit);
    return { object: "list", data };
  });

  routes.post(
    "/v1/webhook-deliveries/:id/retry",
    { schema: { params: deliveryParams } },
    async (request, reply) => {
      const { id } = request.params;
      const stored = await store.get(id);
      if (!stored || stored.tenant !== request.tenant) throw notFound(`no webhook delivery with id ${id}`);
      const conflict = (message: string) =>
        new HttpError(409, "conflict_error", message, undefined, { "retry-after": "1" });
      if (stored.delivery.status !== "dead") {
        throw conflict(
          `webhook delivery ${id} is ${stored.delivery.status}; only dead deliveries can be retried`,
        );
      }
      // The record moves first (compare-and-set), so two retries racing cannot both go through.
      const pending = await store.move(request.tenant, id, "dead", "pending");
      if (!pending) throw conflict(`webhook delivery ${id} is being retried already`);
      try {
        const job = await Job.fromId(queue, id);
        if (!job) throw new Error("its queued payload has expired");
        // BullMQ checks the job is still failed; a fresh budget of max_attempts deliveries.
        await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
      } catch (error) {
        await store.move(request.tenant, id, "pending", "dead");
        // Redis did not answer: a 503 with Retry-After, as for any request while it is away.
        if (isRedisUnavailableError(error)) throw error;
        throw conflict(`webhook delivery ${id} cannot be retried right now: ${(error as Error).message}`);
      }
      return reply.code(202).send(pending);
    },
  );
}
