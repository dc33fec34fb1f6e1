import { jsonSchemaTransform } from "fastify-type-provider-zod";
import type { RouteAccess } from "./plugins/auth.js";

/** What GET /docs says a route answers: its status codes (success and expected refusals), in words. */
type Answers = Record<string, string>;

const ERROR_SHAPE = 'an error: {"error": {"type", "message", "code", "param"}}';
const JOB = "the job object";
const OPEN_REQUESTS =
  "rate_limit_error (too_many_open_requests, Retry-After): the tenant holds its max_open_requests open on this process";

/**
 * The answers of the routes whose statuses the route's schema does not carry (the handlers set
 * them), keyed by method and URL as Fastify registers them. Every documented operation also gets
 * a `default` response in the error shape.
 */
const ROUTE_ANSWERS: Record<string, Answers> = {
  "POST /v1/jobs": {
    202: `${JOB}, queued (Location: /v1/jobs/{id})`,
    200: `an Idempotency-Key replay: ${JOB} the first request made (Idempotent-Replayed: true)`,
    400: "the body is invalid, or names an unknown model or route",
    409: "a request with the same Idempotency-Key is still being processed (Retry-After)",
    422: "the Idempotency-Key was used with a different body",
  },
  "GET /v1/jobs/:id": {
    200: JOB,
    404: "no such job (or another tenant's)",
    429: `with wait: ${OPEN_REQUESTS}`,
  },
  "DELETE /v1/jobs/:id": {
    200: `a queued job, cancelled: ${JOB}`,
    202: `a running job, asked to stop: ${JOB}; it ends cancelled once its worker has aborted`,
    404: "no such job (or another tenant's)",
    409: "the job had already ended",
  },
  "GET /v1/jobs/:id/events": {
    200: "Server-Sent Events (text/event-stream): status, attempt, delta, restart, done; resumable with Last-Event-ID",
    204: "the client already had the ended job's done event",
    404: "no such job (or another tenant's)",
    429: OPEN_REQUESTS,
  },
  "POST /v1/chat/completions": {
    200: "a chat.completion, or with stream: true chat.completion.chunk events ending data: [DONE]",
    400: "invalid_request_error: a malformed body, price_ceiling, or bad_request from the upstream",
    404: "not_found_error (model_not_found): an unknown model or route",
    429: `rate_limit_error (rate_limited, Retry-After) or insufficient_quota (over_budget); ${OPEN_REQUESTS}`,
    502: "api_error (all_models_failed): every hop failed",
  },
  "POST /v1/files": {
    200: "the file object",
    400: "not a multipart upload with purpose=batch and one JSONL file",
  },
  "GET /v1/files/:id/content": { 200: "the file's bytes (JSONL)" },
  "POST /v1/batches": { 200: "the batch object", 400: "the input file fails validation" },
  "POST /v1/webhook-deliveries/:id/retry": { 202: "the delivery, pending again (same webhook-id)" },
  "POST /v1/alerts/deliveries/:id/retry": { 202: "the alert webhook delivery, pending again" },
  "GET /healthz": { 200: "the process is up" },
  "GET /readyz": { 200: "Redis is reachable", 503: "Redis is not reachable" },
  "GET /metrics": {
    200: "Prometheus text exposition (text/plain; version=0.0.4); an admin key as a bearer token",
  },
};

/** POST /v1/files takes multipart/form-data, parsed by the route itself (no body schema). */
const FILE_UPLOAD_BODY = {
  type: "object",
  required: ["purpose", "file"],
  properties: {
    purpose: { type: "string", enum: ["batch"] },
    file: { type: "string", format: "binary", description: "JSONL, one request per line" },
  },
};

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/**
 * GET /docs's transform: zod's (fastify-type-provider-zod), then what the handlers answer, which
 * no schema says (a 202, an event stream, a public probe needing no key, a multipart body). Only
 * the document changes: the routes' own schemas, and so what they validate and send, do not.
 */
export function describeRealAnswers(input: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const transformed = jsonSchemaTransform(input) as { schema?: Record<string, unknown>; url: string };
  const schema: Record<string, unknown> = { ...(transformed.schema ?? {}) };
  if (schema.hide) return { schema, url: transformed.url };
  const methods = [input.route.method].flat().map((method) => String(method).toUpperCase());
  const answers = methods.map((method) => ROUTE_ANSWERS[`${method} ${input.url}`]).find(Boolean);
  const response: Record<string, unknown> = { ...((schema.response as Record<string, unknown>) ?? {}) };
  for (const [status, description] of Object.entries(answers ?? {}))
    response[status] = { ...(response[status] as object), description };
  response.default ??= { description: ERROR_SHAPE };
  schema.response = response;
  if ((input.route.config as { access?: RouteAccess } | undefined)?.access === "public") schema.security = [];
  if (methods.includes("POST") && input.url === "/v1/files") {
    schema.consumes = ["multipart/form-data"];
    schema.body = FILE_UPLOAD_BODY;
  }
  return { schema, url: transformed.url } as ReturnType<typeof jsonSchemaTransform>;
}
