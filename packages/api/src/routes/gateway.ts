import { findRefusedImageUrl, RunSignal } from "@cascade/engine";
import {
  ChainResolutionError,
  type Clock,
  type Config,
  finishedRequestOf,
  httpErrorOf,
  type IdGenerator,
  type JobOutcome,
  type RequestObserver,
  resolveChain,
  unixSeconds,
} from "@cascade/shared";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { ChunkStream } from "../gateway/chunk-stream.js";
import { type GatewayBody, gatewayBodySchema } from "../gateway/gateway-body.js";
import { errorBody, errorHeaders } from "../gateway/gateway-errors.js";
import { DEFAULT_SYNC_DEADLINE_MS, type GatewayRunner, routeOf } from "../gateway/gateway-runner.js";
import type { GatewayRuns } from "../gateway/gateway-runs.js";
import { onConnectionClose } from "../plugins/connection-close.js";
import { badRequest, HttpError } from "../plugins/http-error.js";
import type { OpenRequests } from "../plugins/open-requests.js";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";

export interface GatewayRoutesDeps {
  config: Config;
  runner: GatewayRunner;
  clock: Clock;
  newId: IdGenerator;
  /** Told of every gateway request that ended (metrics, usage counts, alerts). */
  observer?: RequestObserver;
  /** Each tenant's requests held open on this process (`max_open_requests`). */
  openRequests: OpenRequests;
  /** The requests being answered, which a shutdown stops with an answer. */
  runs?: GatewayRuns;
}

/** The longest wait for limits a caller may ask for (`x-cascade-deadline-ms`). */
const MAX_DEADLINE_MS = 10 * 60 * 1000;

function deadlineHeader(request: FastifyRequest): number | undefined {
  const raw = request.headers["x-cascade-deadline-ms"];
  if (raw === undefined) return undefined;
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  if (!Number.isInteger(value) || value < 0 || value > MAX_DEADLINE_MS) {
    throw new HttpError(
      400,
      "invalid_request_error",
      `x-cascade-deadline-ms must be a whole number of milliseconds from 0 to ${MAX_DEADLINE_MS}`,
      "x-cascade-deadline-ms",
    );
  }
  return value;
}

/**
 * `model:reason` for every hop that did not answer, once per hop: a hop's tries (its retries, a
 * pool's deployments) are consecutive attempts of one model, named by the last one's reason
 * (attempts carry no hop index: a chain naming one model in two hops in a row shows it once). The
 * answering hop's own failed tries are not fallbacks.
 */
function fallbacksOf(outcome: Pick<JobOutcome, "attempts" | "model">): string {
  const { attempts } = outcome;
  // The answering hop's tries are the attempts of its model at the end; the same model's failures
  // at an earlier hop are fallbacks from it.
  let answeringFrom = attempts.length;
  while (answeringFrom > 0 && attempts[answeringFrom - 1]?.model === outcome.model) answeringFrom--;
  const pairs: Array<{ model: string; reason: string }> = [];
  let previous: string | undefined;
  for (const [index, attempt] of attempts.entries()) {
    if (index >= answeringFrom) break;
    const sameHop = attempt.model === previous;
    previous = attempt.model;
    if (attempt.outcome === "success") continue;
    const reason = attempt.reason ?? attempt.outcome;
    const last = pairs.at(-1);
    if (sameHop && last?.model === attempt.model) last.reason = reason;
    else pairs.push({ model: attempt.model, reason });
  }
  return pairs.map((pair) => `${pair.model}:${pair.reason}`).join(",");
}

function traceHeaders(reply: FastifyReply, outcome: JobOutcome): void {
  if (outcome.model) reply.header("x-cascade-model", outcome.model);
  if (outcome.provider) reply.header("x-cascade-provider", outcome.provider);
  reply.header("x-cascade-attempts", String(outcome.attempts.length));
  const fallbacks = fallbacksOf(outcome);
  if (fallbacks) reply.header("x-cascade-fallbacks", fallbacks);
  reply.header("x-cascade-cost-usd", String(outcome.cost_usd));
}

/**
 * POST /v1/chat/completions and GET /v1/models: the drop-in OpenAI-compatible door (contract,
 * "Gateway"). Requests run in this process through the same engine as jobs.
 */
export function registerGatewayRoutes(app: FastifyInstance, deps: GatewayRoutesDeps): void {
  const { config, runner, clock } = deps;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const privateNetworks = { allowPrivateNetworks: config.file.webhooks.allow_private_networks };
  // Every route and model, in OpenAI's list shape; `created` is when this process loaded them.
  const created = unixSeconds(clock.now());
  const modelList = {
    object: "list",
    data: [...Object.keys(config.file.routes), ...Object.keys(config.file.models)].map((id) => ({
      id,
      object: "model",
      created,
      owned_by: "cascade",
    })),
  };

  routes.get("/v1/models", async () => modelList);
  // One of them (`client.models.retrieve(id)`). A wildcard: model ids may hold "/" (`anthropic/claude`).
  const modelsById = new Map(modelList.data.map((model) => [model.id, model]));
  routes.get("/v1/models/*", async (request, reply) => {
    const id = (request.params as { "*": string })["*"];
    const model = modelsById.get(id);
    if (model) return model;
    const message = `the model ${JSON.stringify(id)} is neither a configured model nor a route`;
    return reply
      .code(404)
      .send(errorBody({ type: "not_found_error", code: "model_not_found", message }, "model"));
  });

  // The answer is the completion itself, nothing a client reads back later: no wait for replicas.
  const route = { schema: { body: gatewayBodySchema }, config: { replicaWait: false } };
  routes.post("/v1/chat/completions", route, async (request, reply) => {
    const body = request.body as GatewayBody;
    // Errors before the handler get theirs in sendError (plugins/error-handler.ts).
    const requestId = deps.newId("req");
    reply.header("x-request-id", requestId);
    deps.openRequests.hold(request, reply);
    // A malformed body's 400, as the schema's own: image URLs a provider would fetch on private hosts.
    const image = findRefusedImageUrl(body.messages, privateNetworks);
    if (image) throw badRequest(image.message, image.param);
    let resolved: ReturnType<typeof resolveChain>;
    try {
      resolved = resolveChain(config.file, { ...body, request: body });
    } catch (error) {
      if (!(error instanceof ChainResolutionError)) throw error;
      const param = error.param.replace(/^request\./, "");
      const message = error.message.replace(/^request\.model/, "model");
      // No name at all (and no route named default) is a malformed body, as OpenAI answers a
      // missing `model`; a name nothing configures is the contract's 404.
      if (error.code === null) {
        reply.code(400).send(errorBody({ type: "invalid_request_error", code: null, message }, param));
        return reply;
      }
      reply.code(404).send(errorBody({ type: "not_found_error", code: error.code, message }, param));
      return reply;
    }
    const route = routeOf(config, resolved);
    const deadlineMs = deadlineHeader(request) ?? route?.sync_deadline_ms ?? DEFAULT_SYNC_DEADLINE_MS;
    const data = runner.describe({ tenant: request.tenant, body, resolved, deadlineMs });
    const startedAtMs = clock.now();
    const observe = (outcome: JobOutcome) =>
      deps.observer?.finished(
        finishedRequestOf("gateway", data, outcome, {
          createdAtMs: startedAtMs,
          startedAtMs,
          finishedAtMs: clock.now(),
        }),
      );
    // The caller leaving stops the run: its calls are charged, nothing more is started.
    const run = new RunSignal();
    deps.runs?.add(run);
    const onClose = () => {
      if (!reply.raw.writableFinished) run.interrupt("cancelled");
    };
    reply.raw.on("close", onClose);
    // A pipelined request whose connection dropped before its answer: its response never closes.
    const forgetConnection = onConnectionClose(request, onClose);
    // Gone while the body was read or the key checked: the close came before the listener.
    // (Not `request.raw.destroyed`: a request is destroyed once its body has been read.)
    if (reply.raw.destroyed || request.raw.socket?.destroyed === true) onClose();
    try {
      if (body.stream) return await streamAnswer(reply, { requestId, data, runSignal: run, route, observe });
      const { outcome, param } = await runner.run({ requestId, data, run });
      observe(outcome);
      traceHeaders(reply, outcome);
      if (outcome.status === "succeeded") return outcome.result;
      // The caller has gone: nobody reads this (499, as nginx logs a client that closed first).
      if (outcome.status === "cancelled") return reply.code(499).send();
      const error = httpErrorOf(outcome);
      reply.headers(errorHeaders(error));
      reply.code(error.status);
      return errorBody(error, param);
    } finally {
      deps.runs?.delete(run);
      reply.raw.off("close", onClose);
      forgetConnection();
    }
  });

  /**
   * A streamed answer. The reply is taken over from Fastify at once (the SSE response is written
   * by hand), so everything after this point answers through `reply.raw`, errors included.
   */
  async function streamAnswer(
    reply: FastifyReply,
    run: {
      requestId: string;
      data: ReturnType<GatewayRunner["describe"]>;
      runSignal: RunSignal;
      route: ReturnType<typeof routeOf>;
      observe: (outcome: JobOutcome) => void;
    },
  ): Promise<FastifyReply> {
    const { data } = run;
    reply.hijack();
    const headers = () => reply.getHeaders() as Record<string, string>;
    const stream = new ChunkStream(reply.raw, {
      id: `chatcmpl-${run.requestId.replace(/^req_/, "")}`,
      created: unixSeconds(clock.now()),
      chainModels: data.chain.map((hop) => hop.model),
      holdMs: run.route?.stream_hold_ms ?? 0,
      policy: run.route?.on_stream_failure ?? "continue",
      includeUsage: data.request.stream_options?.include_usage === true,
      logprobs: data.request.logprobs === true,
      open: (modelId, provider) => {
        const model = config.file.models[modelId];
        const attempts = stream.attempts;
        const fallbacks = fallbacksOf({ attempts, model: modelId });
        // Opened by the answer's end (it came within stream_hold_ms): its attempt is recorded.
        const answering = attempts.at(-1)?.outcome === "success" ? 0 : 1;
        // getHeaders() is a fresh object: filled in place rather than spread into another.
        const head = headers();
        head["content-type"] = "text/event-stream; charset=utf-8";
        head["cache-control"] = "no-cache";
        head.connection = "keep-alive";
        head["x-accel-buffering"] = "no";
        head["x-cascade-model"] = modelId;
        // The call answering now (a pooled model's deployment's provider), else the model's.
        const answeringProvider = provider ?? model?.provider;
        if (answeringProvider) head["x-cascade-provider"] = answeringProvider;
        // The attempts so far and the one answering now; its cost is not known yet.
        head["x-cascade-attempts"] = String(attempts.length + answering);
        if (fallbacks) head["x-cascade-fallbacks"] = fallbacks;
        reply.raw.writeHead(200, head);
      },
    });
    const answerError = (status: number, body: unknown, extra: Record<string, string> = {}) => {
      if (reply.raw.headersSent) return;
      reply.raw.writeHead(status, {
        ...headers(),
        ...extra,
        "content-type": "application/json; charset=utf-8",
      });
      reply.raw.end(JSON.stringify(body));
    };
    let outcome: JobOutcome;
    let param: string | undefined;
    try {
      ({ outcome, param } = await runner.run({
        requestId: run.requestId,
        data,
        run: run.runSignal,
        events: stream,
        continuation: stream,
      }));
    } catch (error) {
      const unavailable = isRedisUnavailableError(error);
      const failure = {
        type: unavailable ? ("service_unavailable_error" as const) : ("api_error" as const),
        code: unavailable ? "redis_unavailable" : "internal_error",
        message: unavailable ? "Redis is unavailable; retry shortly" : "internal error",
      };
      if (!unavailable) reply.log.error({ err: error, request_id: run.requestId }, "gateway stream failed");
      if (stream.opened) stream.fail(errorBody(failure));
      else
        answerError(unavailable ? 503 : 500, errorBody(failure), unavailable ? { "retry-after": "1" } : {});
      return reply;
    }
    run.observe(outcome);
    if (outcome.status === "cancelled") {
      stream.dispose();
      if (!reply.raw.writableEnded) reply.raw.destroy();
      return reply;
    }
    if (outcome.status === "succeeded") {
      const result = outcome.result as { choices: Array<{ finish_reason: string }>; usage?: unknown };
      const usage = data.request.stream_options?.include_usage ? result.usage : undefined;
      stream.finish(
        outcome.model ?? data.chain[0]?.model ?? "",
        result.choices[0]?.finish_reason ?? "stop",
        usage,
      );
      return reply;
    }
    const error = httpErrorOf(outcome);
    if (stream.opened) {
      // The caller has part of an answer that no hop could finish: say so, and send no [DONE].
      stream.fail(errorBody({ ...error, code: outcome.error?.type ?? error.code }));
      return reply;
    }
    traceHeaders(reply, outcome);
    answerError(error.status, errorBody(error, param), errorHeaders(error));
    return reply;
  }
}
