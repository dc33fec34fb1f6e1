import { findRefusedImageUrl } from "@cascade/engine";
import {
  ChainResolutionError,
  type Clock,
  type Config,
  createJobBodySchema,
  endUserOf,
  type IdGenerator,
  isRedisRefusal,
  type JobData,
  type JobObject,
  type RequestObserver,
  resolveChain,
  sha256Hex,
  unixSeconds,
} from "@cascade/shared";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { canonicalJson } from "../jobs/canonical-json.js";
import type { IdempotencyKeys } from "../jobs/idempotency.js";
import { isTerminal, type JobStore } from "../jobs/job-store.js";
import type { JobWaiters } from "../jobs/job-waiters.js";
import { badRequest, HttpError, headerLines, notFound } from "../plugins/http-error.js";
import type { OpenRequests } from "../plugins/open-requests.js";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";
import type { ApiWebhooks } from "./webhook-deliveries.js";

export interface JobRoutesDeps {
  config: Config;
  store: JobStore;
  waiters: JobWaiters;
  idempotency: IdempotencyKeys;
  clock: Clock;
  newId: IdGenerator;
  webhooks: ApiWebhooks;
  /** Each tenant's requests held open on this process (`max_open_requests`; a waiting GET is one). */
  openRequests: OpenRequests;
  /** Told of a job cancelled here (no worker held it), as workers tell of the jobs they end. */
  observer?: RequestObserver;
}

export const MAX_WAIT_SECONDS = 60;
/**
 * How long DELETE on a running job waits for its end before answering 202 (a call in flight is
 * aborted, or a run that had its answer records it, within milliseconds as a rule).
 */
const CANCEL_SETTLE_MS = 2_000;
/** How long after its reservation an Idempotency-Key's job may still be on its way into the queue. */
const ENQUEUE_WINDOW_MS = 30_000;
/**
 * A request adds its job within milliseconds of reserving its key; a reservation this old with no
 * job was cut off (Redis froze or went away under it, and the request answered 503). A retry then
 * adds the job itself, under the reserved id: should the first add still land, BullMQ answers it
 * as a duplicate, so the two make one job.
 */
const CUT_OFF_AFTER_MS = 3_000;

const jobParams = z.object({ id: z.string().min(1).max(200) });
const waitQuery = z.object({
  wait: z.coerce
    .number({ error: "wait must be a number of seconds" })
    .int("wait must be a whole number of seconds")
    .min(0, "wait must be at least 0")
    .max(MAX_WAIT_SECONDS, `wait must be at most ${MAX_WAIT_SECONDS} seconds`)
    .optional(),
});

function queuedJob(jobId: string, data: JobData): JobObject {
  return {
    id: jobId,
    object: "job",
    status: "queued",
    created_at: data.created_at,
    started_at: null,
    finished_at: null,
    route: data.route,
    models: data.chain.map((hop) => hop.model),
    priority: data.priority,
    metadata: data.metadata ?? {},
    user: data.user ?? null,
    result: null,
    model: null,
    provider: null,
    cost_usd: 0,
    attempts: [],
    error: null,
    webhook: data.webhook ?? null,
  };
}

export function registerJobRoutes(app: FastifyInstance, deps: JobRoutesDeps): void {
  const { config, store, waiters, idempotency, clock } = deps;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const privateNetworks = { allowPrivateNetworks: config.file.webhooks.allow_private_networks };

  routes.post("/v1/jobs", { schema: { body: createJobBodySchema } }, async (request, reply) => {
    const body = request.body;
    // A malformed body's 400, as the schema's own (and as the gateway checks it): image URLs a
    // provider would fetch on private hosts.
    const image = findRefusedImageUrl(body.request.messages, privateNetworks, ["request"]);
    if (image) throw badRequest(image.message, image.param);
    let resolved: ReturnType<typeof resolveChain>;
    try {
      resolved = resolveChain(config.file, body);
    } catch (error) {
      // The gateway's code for the same mistake (there a 404, as OpenAI answers; here the contract's 400).
      if (error instanceof ChainResolutionError)
        throw badRequest(error.message, error.param, error.code ?? undefined);
      throw error;
    }
    if (body.webhook) await deps.webhooks.checkUrl(body.webhook.url);
    const now = clock.now();
    let jobId = deps.newId("job");
    const data: JobData = {
      v: 1,
      tenant: request.tenant,
      request: body.request,
      route: resolved.route,
      chain: resolved.chain,
      policy: resolved.policy,
      ...(body.metadata ? { metadata: body.metadata } : {}),
      ...(body.webhook ? { webhook: body.webhook } : {}),
      priority: body.priority,
      ...(body.max_cost_usd !== undefined ? { max_cost_usd: body.max_cost_usd } : {}),
      ...endUserOf(body.user, body.request.user),
      created_at: unixSeconds(now),
      deadline_at: now + resolved.deadline_ms,
    };

    const idempotencyKey = request.headers["idempotency-key"];
    if (typeof idempotencyKey === "string") {
      if (idempotencyKey.length === 0 || idempotencyKey.length > 255) {
        throw badRequest("Idempotency-Key header must be 1 to 255 characters", "Idempotency-Key");
      }
      // Node joins two lines into "k1, k2": a key nobody sent.
      const lines = headerLines(request, "idempotency-key");
      if (lines > 1) throw badRequest(`send one Idempotency-Key header, not ${lines}`, "Idempotency-Key");
      const bodyHash = sha256Hex(canonicalJson(body));
      // Keys reserved before bodies were compared canonically hold the plain JSON's hash (24 h).
      const legacyHash = sha256Hex(JSON.stringify(body));
      let reservation = await idempotency.reserve(
        request.tenant,
        idempotencyKey,
        bodyHash,
        jobId,
        now,
        legacyHash,
      );
      if (
        reservation.kind === "replay" &&
        (reservation.added || now - reservation.reservedAt > ENQUEUE_WINDOW_MS)
      ) {
        if (!(await store.get(request.tenant, reservation.jobId))) {
          // Its job went in and has been removed (JOB_RETENTION_S shorter than the key's 24 h, or
          // an operator removed it): within the key's 24 h the request never runs (and is billed)
          // again, and its job cannot be answered, so the client is told why.
          if (reservation.added) {
            throw new HttpError(
              422,
              "idempotency_error",
              `this Idempotency-Key's job ${reservation.jobId} is gone (removed after JOB_RETENTION_S, or by an operator) and the key is kept 24 h; send a new key to run the request again`,
              "Idempotency-Key",
            );
          }
          // Its request was cut off before its job went in (or the note that it did was lost):
          // the key is taken over, and the request is a new one (of concurrent retries, exactly
          // one takes it over).
          reservation = await idempotency.takeOver(
            request.tenant,
            idempotencyKey,
            reservation.jobId,
            bodyHash,
            jobId,
            now,
          );
        }
      }
      if (reservation.kind === "mismatch") {
        throw new HttpError(
          422,
          "idempotency_error",
          "this Idempotency-Key was already used with a different request body; use a new key for a new request",
          "Idempotency-Key",
        );
      }
      if (reservation.kind === "replay") {
        const existing = await store.get(request.tenant, reservation.jobId);
        if (existing) {
          reply.header("idempotent-replayed", "true");
          reply.header("location", `/v1/jobs/${existing.id}`);
          return reply.code(200).send(existing);
        }
        if (now - reservation.reservedAt <= CUT_OFF_AFTER_MS) {
          throw new HttpError(
            409,
            "conflict_error",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            "Idempotency-Key",
            { "retry-after": "1" },
          );
        }
        // The first request was cut off before its job went in: this retry enqueues it.
        jobId = reservation.jobId;
      }
      try {
        await store.add(jobId, data, body);
        // Not awaited: until it is written, a replay that finds no job waits out the window.
        void idempotency.markAdded(request.tenant, idempotencyKey, jobId).catch(() => {});
      } catch (error) {
        // When Redis did not answer, the add may have happened: keep the key (a retry then
        // replays the job, or adds it under the same id); else (an error, or Redis refusing the
        // add for now: nothing was written) free it.
        if (!isRedisUnavailableError(error) || isRedisRefusal(error)) {
          await idempotency.release(request.tenant, idempotencyKey, jobId).catch(() => {});
        }
        throw error;
      }
    } else {
      await store.add(jobId, data, body);
    }
    reply.header("location", `/v1/jobs/${jobId}`);
    return reply.code(202).send(queuedJob(jobId, data));
  });

  routes.get(
    "/v1/jobs/:id",
    { schema: { params: jobParams, querystring: waitQuery } },
    async (request, reply) => {
      const { id } = request.params;
      const waitSeconds = request.query.wait ?? 0;
      if (waitSeconds > 0) deps.openRequests.hold(request, reply);
      const waiter = waitSeconds > 0 ? waiters.register(id, waitSeconds * 1000) : undefined;
      try {
        // Read the job only once its end can no longer be missed.
        if (waiter) await waiter.ready;
        let job = await store.get(request.tenant, id);
        if (!job) throw notFound(`no job with id ${id}`);
        if (waiter && !isTerminal(job)) {
          const closed = new Promise<void>((resolve) => request.raw.once("close", () => resolve()));
          await Promise.race([waiter.done, closed]);
          job = (await store.get(request.tenant, id)) ?? job;
        }
        return job;
      } finally {
        waiter?.cancel();
      }
    },
  );

  routes.delete("/v1/jobs/:id", { schema: { params: jobParams } }, async (request, reply) => {
    const { id } = request.params;
    let result = await store.cancel(request.tenant, id, clock.now(), (cancelled) =>
      deps.webhooks.jobCancelled(request.tenant, cancelled, clock.now()),
    );
    if (!result) throw notFound(`no job with id ${id}`);
    if (result.kind === "requested" && result.job.status !== "cancelled") {
      // A run whose call has answered records its result whatever the cancel says (the answer is
      // paid for): it ends succeeded (or failed) a moment later, and 202 would promise a cancel
      // that never comes (a probe saw 13 of 95). A call in flight is aborted and the job ends
      // cancelled within milliseconds too. So the answer waits for the end, CANCEL_SETTLE_MS at
      // most, and tells what happened; a run that takes longer is still being cancelled (202).
      const ended = await settledAfterCancel(request, reply, id);
      if (ended && isTerminal(ended)) {
        if (ended.status === "cancelled") result = { kind: "requested", job: ended };
        else {
          // Nothing left to cancel: the flag would only stop a later run that is not coming.
          await store.forgetCancelRequest(id).catch(() => {});
          result = { kind: "terminal", job: ended };
        }
      }
    }
    if (result.kind === "terminal") {
      throw new HttpError(
        409,
        "conflict_error",
        `job ${id} has already ended (status ${result.job.status}); nothing to cancel`,
        undefined,
        // OpenAI's SDKs retry a 409 unless told not to: asking again cannot help here.
        { "x-should-retry": "false" },
      );
    }
    if (result.kind === "cancelled") {
      waiters.wake(id);
      // Counted as the jobs workers end are (cascade_jobs_total, usage rows, the dashboard): what
      // it had spent (a billed hop before a wait for a limit) counts, as a cancelled job's does;
      // calls a dead run left in flight were counted by their process's recovery.
      deps.observer?.finished({
        door: "job",
        tenant: request.tenant,
        route: result.data.route,
        firstModel: result.data.chain[0]?.model ?? "",
        status: "cancelled",
        costUsd: Math.max(0, result.job.cost_usd - result.lostUsd),
        attempts: result.job.attempts,
        createdAtMs: result.job.created_at * 1000,
        ...(result.startedAtMs !== undefined ? { startedAtMs: result.startedAtMs } : {}),
        finishedAtMs: clock.now(),
      });
      // A job shown running (waiting between tries) answers 202 as the contract says of running
      // jobs, though it has already ended cancelled: no worker held it to abort.
      return reply.code(result.wasRunning ? 202 : 200).send(result.job);
    }
    return reply.code(202).send(result.job);
  });

  /**
   * The job after a cancel was asked of its running worker: once it has ended, or as it is after
   * CANCEL_SETTLE_MS (or when the client goes). Held like a `?wait` (max_open_requests).
   */
  async function settledAfterCancel(request: FastifyRequest, reply: FastifyReply, id: string) {
    try {
      deps.openRequests.hold(request, reply);
    } catch {
      // The tenant holds its limit of open requests: the cancel is asked all the same, answered
      // at once (202) rather than refused with a 429 it did not fail.
      return undefined;
    }
    const waiter = waiters.register(id, CANCEL_SETTLE_MS);
    try {
      await waiter.ready;
      // Read once the end can no longer be missed: it may have come before the waiter.
      const now = await store.get(request.tenant, id);
      if (!now || isTerminal(now)) return now;
      const closed = new Promise<void>((resolve) => request.raw.once("close", () => resolve()));
      await Promise.race([waiter.done, closed]);
      return await store.get(request.tenant, id);
    } finally {
      waiter.cancel();
    }
  }
}
