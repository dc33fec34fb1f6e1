import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { fieldPath, isRedisRefusal, newId, typedSegments } from "@cascade/shared";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { declaresBody, type ErrorType, HttpError, headerLines } from "./http-error.js";
import { isRedisUnavailableError, redisUnavailable } from "./redis-gate.js";

const TYPE_BY_STATUS: Readonly<Record<number, ErrorType>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  405: "method_not_allowed_error",
  409: "conflict_error",
  413: "request_too_large_error",
  415: "unsupported_media_type_error",
  422: "idempotency_error",
  429: "rate_limit_error",
  503: "service_unavailable_error",
};

/** The error type a 4xx status is answered with (`invalid_request_error` for any other). */
export function errorTypeForStatus(status: number): ErrorType {
  return TYPE_BY_STATUS[status] ?? "invalid_request_error";
}

/** The gateway's completion route (routes/gateway.ts sets x-request-id in its handler). */
const GATEWAY_PATH = "/v1/chat/completions";

/**
 * The gateway's answers carry x-request-id (contract, "Gateway"), errors raised before its handler
 * too (auth, the body, 405): they all come through here. Set on errors only, so requests that
 * succeed pay nothing for it (an onRequest hook on every route cost the enqueue path ~1 µs).
 */
function giveGatewayErrorAnId(reply: FastifyReply): void {
  if (reply.hasHeader("x-request-id")) return;
  const { url } = reply.request;
  const end = GATEWAY_PATH.length;
  if (url.startsWith(GATEWAY_PATH) && (url.length === end || url[end] === "?")) {
    reply.header("x-request-id", newId("req"));
  }
}

export function sendError(
  reply: FastifyReply,
  statusCode: number,
  type: ErrorType,
  message: string,
  param?: string,
  code: string | null = null,
): FastifyReply {
  giveGatewayErrorAnId(reply);
  // Answered mid-way through its body (an upload whose parts were refused): the reading stopped
  // there, and Node drains only a body nobody began to read, so the request would stay paused and
  // the next request on its kept-alive connection would never be read. The rest is read and
  // dropped, as Node does for a body never read, and the client gets its answer.
  const raw = reply.request.raw;
  if (declaresBody(reply.request) && !raw.readableEnded && raw.readableFlowing !== null) {
    raw.unpipe();
    raw.resume();
  }
  // OpenAI's shape: `code` and `param` are always there, null when they say nothing.
  return reply.code(statusCode).send({
    error: {
      type,
      message: clip(message, MESSAGE_CHARS),
      code,
      param: param === undefined ? null : clip(param, PARAM_CHARS),
    },
  });
}

/**
 * The most characters of an error's message and `param`: both may quote what was sent (an unknown
 * key, a field's path), and a 900 KB key made a 1.8 MB answer.
 */
const MESSAGE_CHARS = 2_000;
const PARAM_CHARS = 300;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** What fastify-type-provider-zod puts in `error.validation` for each zod issue. */
interface ValidationIssue {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: { keys?: string[] };
}

/**
 * One line naming each bad field, e.g. `request.messages[0].role: Invalid input`: paths as OpenAI
 * names fields (`fieldPath`), array elements told from digit keys by walking the input.
 */
function describeValidation(
  issues: ValidationIssue[],
  context: string | undefined,
  input: unknown,
): { message: string; param?: string } {
  const where = context === "querystring" ? "query" : context === "params" ? "path" : "body";
  const lines = issues.slice(0, 5).map((issue) => {
    const segments = typedSegments((issue.instancePath ?? "").split("/").filter(Boolean), input);
    const path = fieldPath(segments);
    let message = issue.message ?? "invalid";
    let param = path;
    if (issue.keyword === "unrecognized_keys" && issue.params?.keys?.length) {
      const keys = issue.params.keys;
      message = `unknown field${keys.length > 1 ? "s" : ""} ${keys.map((key) => `"${key}"`).join(", ")}`;
      // The param names the field itself (the issue's path is the object holding it).
      param = fieldPath([...segments, keys[0] as string]);
    }
    const prefix = where === "body" ? "" : `${where} `;
    return { param, text: `${prefix}${path || where}: ${message}` };
  });
  return { message: lines.map((line) => line.text).join("; "), param: lines[0]?.param || undefined };
}

/** The 404, or 405 with `Allow`, for a request no route serves. */
export type UnroutedAnswer = (request: FastifyRequest) => HttpError;

/**
 * Every error, Fastify's own included, in the contract's shape. Bad input is a 4xx naming the
 * field; only our own faults are 5xx, and they never leak internals.
 */
export function registerErrorHandling(
  app: FastifyInstance,
  routes: Array<{ method: string; pattern: RegExp }>,
): UnroutedAnswer {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof HttpError) {
      for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
      return sendError(reply, error.statusCode, error.type, error.message, error.param, error.code);
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const context = error.validationContext;
      const input =
        context === "querystring" ? request.query : context === "params" ? request.params : request.body;
      const described = describeValidation(error.validation as ValidationIssue[], context, input);
      return sendError(reply, 400, "invalid_request_error", described.message, described.param);
    }
    const statusCode = error.statusCode ?? 500;
    if (statusCode >= 400 && statusCode < 500) {
      let message = error.message;
      if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE")
        message = "request body is larger than the 1 MiB limit";
      else if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
        message = `unsupported Content-Type "${request.headers["content-type"] ?? ""}"; send application/json`;
      } else if (error instanceof SyntaxError || error.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
        message = `body is not valid JSON: ${error.message}`;
      }
      return sendError(reply, statusCode, errorTypeForStatus(statusCode), message);
    }
    if (isRedisUnavailableError(error)) {
      request.log.warn(
        { err: error.message },
        isRedisRefusal(error)
          ? "request failed: Redis refused it for now"
          : "request failed: Redis is not reachable",
      );
      const unavailable = redisUnavailable(error.message, request.method);
      for (const [name, value] of Object.entries(unavailable.headers)) reply.header(name, value);
      return sendError(reply, 503, unavailable.type, unavailable.message);
    }
    request.log.error({ err: error }, "request failed");
    if (statusCode === 503) return sendError(reply, 503, "service_unavailable_error", error.message);
    return sendError(reply, 500, "api_error", "internal error; the request id is in the logs");
  });

  const unrouted = (request: FastifyRequest): HttpError => {
    const path = request.url.split("?")[0] ?? "/";
    const allowed = [
      ...new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method)),
    ];
    if (allowed.length) {
      return new HttpError(
        405,
        "method_not_allowed_error",
        `${request.method} is not allowed on ${path}; use ${allowed.join(", ")}`,
        undefined,
        { allow: allowed.join(", ") },
      );
    }
    return new HttpError(404, "not_found_error", `no route ${request.method} ${path}`);
  };
  // Reached once the body is read: registerAuth's hook answers those that declare one before.
  app.setNotFoundHandler((request, reply) => {
    const error = unrouted(request);
    for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
    return sendError(reply, error.statusCode, error.type, error.message);
  });
  return unrouted;
}

/**
 * Turns a Fastify route url (`/v1/jobs/:id`) into a regex matching the concrete paths the router
 * matches: exactly, as the router does (no trailing-slash leniency), so a 405 names only paths
 * another method of the same route serves.
 */
export function routePattern(url: string): RegExp {
  const escaped = url
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${escaped}$`);
}

/**
 * How long a client may take to send a whole request (headers and body): an hour, so that a
 * 100 MiB upload on a slow uplink (under 0.25 Mbit/s) still goes through, while a request that
 * stalls for good (a body shorter than its Content-Length) does not hold its socket for ever.
 */
export const REQUEST_TIMEOUT_MS = 3_600_000;

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (a malformed request line, a
 * framing it refuses, headers too large, a request not sent within REQUEST_TIMEOUT_MS): answered
 * in the contract's error shape, as Fastify's default handler does in its own, then the socket
 * closes (what follows on it cannot be trusted).
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // A reset connection has no one to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  // A response already under way on this socket (as Node's own handler checks): writing a status
  // line now would corrupt it; the socket just closes.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (inFlight?.headersSent) {
    socket.destroy(error);
    return;
  }
  const [status, type, message]: [number, ErrorType, string] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [
          408,
          "invalid_request_error",
          `the request was not sent within ${REQUEST_TIMEOUT_MS / 60_000} minutes`,
        ]
      : error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "invalid_request_error", "the request's headers are larger than the server takes"]
        : error.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW"
          ? [
              413,
              "request_too_large_error",
              "the request's chunk extensions are larger than the server takes",
            ]
          : [400, "invalid_request_error", "the request is not valid HTTP/1.1"];
  if (socket.writable) socket.write(rawErrorResponse(status, type, message));
  socket.destroy(error);
}

/** A whole HTTP/1.1 response in the contract's error shape, for a socket no framework answers on. */
function rawErrorResponse(
  status: number,
  type: ErrorType,
  message: string,
  headers: Record<string, string> = {},
): string {
  const body = JSON.stringify({ error: { type, message, code: null, param: null } });
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n${extra}Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * What Node's HTTP server answers itself, bare, unless told: an `Expect` other than
 * `100-continue` (a 417 with no body) and CONNECT (the socket closed with no answer). Both in the
 * contract's error shape here, as every framework error is. (A request with no Host, which Node
 * would answer with a bare 400, reaches the auth hook: `hostProblem`.)
 */
export function answerProtocolRefusals(server: Server): void {
  server.on("checkExpectation", (_request: IncomingMessage, response: ServerResponse) => {
    // Through the response, so that one pipelined behind others goes out in its turn.
    const body = JSON.stringify({
      error: {
        type: "invalid_request_error",
        message: "the Expect header is not supported (only 100-continue is)",
        code: null,
        param: null,
      },
    });
    response.writeHead(417, {
      connection: "close",
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    response.end(body);
  });
  server.on("connect", (_request: IncomingMessage, socket: Duplex) => {
    // Handed over by Node, this socket has none of the server's timeouts: it goes once the
    // client has read the answer (its FIN), or after CONNECT_LINGER_MS whatever it does.
    socket.on("error", () => {});
    socket.on("data", () => {});
    socket.once("end", () => socket.destroy());
    setTimeout(() => socket.destroy(), CONNECT_LINGER_MS).unref();
    socket.end(
      rawErrorResponse(
        405,
        "method_not_allowed_error",
        "CONNECT is not supported: this server is not a proxy",
        {
          Allow: "GET, HEAD, POST, DELETE",
        },
      ),
    );
  });
}

/** How long a refused CONNECT's socket may stay open for its client to read the answer. */
const CONNECT_LINGER_MS = 1_000;

/**
 * What is wrong with a request's Host, if anything: none in HTTP/1.1, or more than one line (RFC
 * 9112 §3.2 makes both a 400). Node's own check is off (`requireHostHeader: false`) so that the
 * answer has the contract's error shape; Node keeps the first of two lines silently.
 */
export function hostProblem(request: FastifyRequest): string | undefined {
  const { raw } = request;
  if (raw.headers.host === undefined) {
    return raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1
      ? "an HTTP/1.1 request must have a Host header"
      : undefined;
  }
  return headerLines(request, "host") > 1 ? "send one Host header, not several" : undefined;
}
