import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import type { Queue } from "bullmq";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { errorTypeForStatus, sendError } from "../plugins/error-handler.js";
import { HttpError } from "../plugins/http-error.js";
import { isRedisUnavailableError, redisUnavailable } from "../plugins/redis-gate.js";

/** Where bull-board is served: its page, its static assets and its JSON API (`…/api/…`). */
export const QUEUE_BOARD_PATH = "/admin/queues";

export interface QueueBoardDeps {
  /** The BullMQ queues an operator may inspect, retry and clean (completions, webhooks). */
  queues: Queue[];
  /** Linked from the board's header. */
  dashboardPath?: string;
}

/**
 * Board routes that would write job data: a job added or edited here would skip the API's
 * validation, tenant and idempotency checks (docs/decisions/0018-admin-pages-auth.md).
 */
const REFUSED_ROUTES = [/\/api\/queues\/:queueName\/add$/, /\/update-data$/];

/** BullMQ's `ErrorCode.JobNotExist`: the job an action names is gone. */
const BULLMQ_JOB_NOT_EXIST = -1;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * bull-board at `/admin/queues`, every one of its routes `admin` and open to HTTP Basic auth
 * (the browser prompts; the password is an admin tenant's API key), see
 * docs/decisions/0018-admin-pages-auth.md. Registered in a scope of its own, so the hooks below
 * touch no other route.
 */
export function registerQueueBoard(app: FastifyInstance, deps: QueueBoardDeps): void {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUE_BOARD_PATH);
  createBullBoard({
    queues: deps.queues.map((queue) => new BullMQAdapter(queue, { allowRetries: true })),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: "Cascade queues",
        miscLinks: [{ text: "Dashboard", url: deps.dashboardPath ?? "/dashboard" }],
      },
    },
  });
  app.register(async (board) => {
    board.addHook("onRoute", (route: RouteOptions) => {
      route.config = { ...(route.config ?? {}), access: "admin", basicAuth: true };
      // bull-board's own error handler (set in its plugin) would turn our 401 into its error
      // shape and drop the WWW-Authenticate header the browser's prompt depends on.
      route.errorHandler = answerHttpErrors;
      if (REFUSED_ROUTES.some((pattern) => pattern.test(route.url))) route.handler = refuseJobWrites;
    });
    board.addHook("onRequest", refuseCrossSiteWrites);
    board.addHook("onSend", async (_request, reply) => {
      // The board's buttons retry and remove jobs: no other site may frame it (clickjacking).
      reply.header("x-frame-options", "DENY");
      reply.header("content-security-policy", "frame-ancestors 'none'");
      reply.header("x-content-type-options", "nosniff");
    });
    await board.register(serverAdapter.registerPlugin(), { prefix: QUEUE_BOARD_PATH });
  });
}

/**
 * Our errors (auth first of all) and Redis being away (a 503 with Retry-After, as on every other
 * route; bull-board's handler made it a 500 of its own shape) in the API's shape with their
 * headers; others to bull-board's handler, whose page reads its shape.
 */
function answerHttpErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  let answer: HttpError;
  if (error instanceof HttpError) answer = error;
  else if (
    typeof error.code === "string" &&
    error.code.startsWith("FST_") &&
    error.statusCode !== undefined &&
    error.statusCode < 500
  ) {
    // Fastify's own refusals (a body it cannot parse, an unsupported Content-Type: 400, 413, 415)
    // are framework errors, which the contract answers in the API's shape everywhere.
    answer = new HttpError(error.statusCode, errorTypeForStatus(error.statusCode), error.message);
  } else if (isRedisUnavailableError(error)) {
    request.log.warn({ err: error.message }, "queue board request failed: Redis is not reachable");
    answer = redisUnavailable(error.message, request.method);
  } else if (typeof bullmqCode(error) === "number" && error.statusCode === undefined) {
    // BullMQ refuses an action on a job that is gone or not in the state it needs (promote a job
    // that is not delayed, retry one that has not failed) with a numeric code: the operator's
    // request conflicts with the job, a 404 or 409 in bull-board's shape, not a 500.
    const missing = bullmqCode(error) === BULLMQ_JOB_NOT_EXIST;
    throw Object.assign(error, { statusCode: missing ? 404 : 409 });
  } else throw error;
  for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value);
  return sendError(reply, answer.statusCode, answer.type, answer.message, answer.param);
}

/** BullMQ's errors carry a numeric `code` (its `ErrorCode`), where Fastify's carry a string. */
function bullmqCode(error: unknown): unknown {
  return (error as { code?: unknown }).code;
}

async function refuseJobWrites(): Promise<never> {
  throw new HttpError(
    403,
    "permission_error",
    "jobs are added and edited through /v1/jobs, where they are validated and charged to a tenant",
  );
}

/**
 * A browser sends Basic credentials with every request to this origin, a forged cross-site form
 * post included: writes must come from the board's own page. `Sec-Fetch-Site` (current browsers)
 * or `Origin` (older ones) say where a request comes from; clients such as curl send neither.
 */
export async function refuseCrossSiteWrites(request: FastifyRequest): Promise<void> {
  if (SAFE_METHODS.has(request.method)) return;
  const site = request.headers["sec-fetch-site"];
  const origin = request.headers.origin;
  const crossSite =
    (site !== undefined && site !== "same-origin" && site !== "none") ||
    (origin !== undefined && originHost(origin) !== request.headers.host);
  if (crossSite) {
    throw new HttpError(403, "permission_error", "the queue board takes writes from its own page only");
  }
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}
