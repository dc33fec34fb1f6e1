import { randomBytes } from "node:crypto";
import {
  createProviderRegistry,
  type HostResolver,
  type ProviderRegistry,
  Resilience,
  withLostCalls,
} from "@cascade/engine";
import {
  AlertEvaluator,
  alertsFiringSamples,
  BatchStore,
  type CascadeMetrics,
  type Clock,
  type Config,
  changedByDecoding,
  createKeys,
  createMetrics,
  createRequestRecorders,
  deliveryRetentionSeconds,
  FileStore,
  type IdGenerator,
  type JobData,
  type JobOutcome,
  type Keys,
  type Logger,
  newId,
  observeAll,
  QUEUE_NAMES,
  type RedisClient,
  type RequestObserver,
  requestMetricsObserver,
  systemClock,
  WebhookDeliveryStore,
  type WebhookQueue,
  weightsFromConfig,
} from "@cascade/shared";
import { createQueue } from "@cascade/shared/bullmq";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import {
  type FastifyBaseLogger,
  type FastifyInstance,
  fastify,
  LogController,
  type RouteOptions,
} from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { Cluster, type ClusterOptions, type Redis, type RedisOptions } from "ioredis";
import { registerQueueBoard } from "./admin/queue-board.js";
import { GatewayRunner } from "./gateway/gateway-runner.js";
import { GatewayRuns } from "./gateway/gateway-runs.js";
import { IdempotencyKeys } from "./jobs/idempotency.js";
import { JobStore } from "./jobs/job-store.js";
import { JobWaiters } from "./jobs/job-waiters.js";
import { StreamReader } from "./jobs/stream-reader.js";
import { UsageStore } from "./jobs/usage-store.js";
import { describeRealAnswers } from "./openapi-answers.js";
import { markRoutesPublic, ROUTE_ACCESS, type RouteAccess, registerAuth } from "./plugins/auth.js";
import { registerBodyDeadline } from "./plugins/body-deadline.js";
import { notUtf8, registerContentEncodingCheck, unsupportedJsonCharset } from "./plugins/content-encoding.js";
import {
  answerClientError,
  answerProtocolRefusals,
  REQUEST_TIMEOUT_MS,
  registerErrorHandling,
  routePattern,
  sendError,
} from "./plugins/error-handler.js";
import { registerBodyDepthLimit } from "./plugins/json-depth.js";
import { registerLingeringClose } from "./plugins/lingering-close.js";
import { OpenRequests } from "./plugins/open-requests.js";
import { prototypeKeyError } from "./plugins/prototype-keys.js";
import { isRedisUnavailableError, registerRedisGate } from "./plugins/redis-gate.js";
import { ReplicaWait, registerReplicaWait } from "./plugins/replica-wait.js";
import { ProviderStatusStore } from "./providers/provider-status-store.js";
import { registerAlertRoutes } from "./routes/alerts.js";
import { registerBatchApi } from "./routes/batches.js";
import { registerDashboardRoutes } from "./routes/dashboard.js";
import { registerGatewayRoutes } from "./routes/gateway.js";
import { OpenEventStreams, registerJobEventRoutes } from "./routes/job-events.js";
import { registerJobRoutes } from "./routes/jobs.js";
import { registerMetricsRoute } from "./routes/metrics.js";
import { registerOpsRoutes } from "./routes/ops.js";
import { registerProviderRoutes } from "./routes/providers.js";
import { registerUsageRoutes } from "./routes/usage.js";
import { createApiWebhooks, registerWebhookDeliveryRoutes } from "./routes/webhook-deliveries.js";

export const BODY_LIMIT_BYTES = 1024 * 1024;

export interface AppDeps {
  config: Config;
  /** Commands connection (not used for blocking reads). */
  redis: RedisClient;
  logger: Logger;
  clock?: Clock;
  newId?: IdGenerator;
  /** Resolver for the webhook URL check at enqueue (tests inject one; default dns.lookup). */
  resolveHost?: HostResolver;
  /** The gateway's provider clients (default: built from the config, keyless providers failing their calls). */
  providers?: ProviderRegistry;
  /** Told of every gateway request that ended, besides the API's own observers (tests). */
  observer?: RequestObserver;
  /** Between alert evaluations (default 2 s; tests shorten it). */
  alertIntervalMs?: number;
}

/** How long the answers of gateway requests a shutdown stopped take to be written, about. */
const STOPPED_ANSWERS_MS = 250;

export interface CascadeApp {
  app: FastifyInstance;
  /** Resolves once the queue and its event reader are connected. */
  ready(): Promise<void>;
  /** Closes the HTTP server (draining requests), then the queue and event reader. */
  close(): Promise<void>;
  /**
   * Ends the gateway requests still being answered (503, or a stream's error event), and any that
   * starts after: a shutdown calls it before its time is up, so that none is cut off unanswered.
   */
  stopGatewayRequests(): void;
  /** Every route with who may call it (read after `ready()`; hooks may still mark routes public). */
  routeTable(): Array<{ method: string; url: string; access: RouteAccess }>;
}

/**
 * A connection for blocking reads (XREAD): unlike the API's command connection, it keeps an
 * offline queue, no command timeout and unlimited retries, so it simply resumes when Redis comes
 * back. `name` (CLIENT SETNAME, sent again on every reconnect) lets the job event reader find its
 * connection's new id while the XREAD ioredis sent again holds it (jobs/stream-reader.ts).
 */
function readerConnection(redis: RedisClient, name?: string): Redis | Cluster {
  // A cluster client has the offline queue at both levels: its own and each node's connection.
  return duplicateWith(
    redis,
    {
      enableOfflineQueue: true,
      commandTimeout: undefined,
      maxRetriesPerRequest: null,
      ...(name ? { connectionName: name } : {}),
    },
    { enableOfflineQueue: true },
  );
}

/** A new connection like `redis` with `options` (on a cluster: each node's, plus `clusterOptions`). */
function duplicateWith(
  redis: RedisClient,
  options: RedisOptions,
  clusterOptions: ClusterOptions = {},
): Redis | Cluster {
  return redis instanceof Cluster
    ? redis.duplicate(undefined, { ...clusterOptions, redisOptions: options })
    : redis.duplicate(options);
}

/**
 * Commands that are not one request's wait, on a connection of their own: a batch's enqueue (500
 * lines per MULTI, each up to 1 MiB) and cancel drain, and the admin board's clean and empty (one
 * script over a whole set). They may rightly run longer than the command connection's timeout
 * (API_REDIS_WAIT_MS, a request's bound while Redis is away: main.ts). Below the batch enqueue's
 * 30 s lease, so a chunk's command gives up before a sweeper may take the enqueue over.
 */
const BACKGROUND_COMMAND_TIMEOUT_MS = 20_000;

function backgroundConnection(redis: RedisClient): RedisClient {
  return duplicateWith(redis, { commandTimeout: BACKGROUND_COMMAND_TIMEOUT_MS });
}

/** How long apart two log lines about short replica waits are, at least (each round is counted in the metrics). */
const REPLICA_WARN_INTERVAL_MS = 10_000;

/**
 * API_REPLICA_ACKS: write requests' answers wait for replicas (plugins/replica-wait.ts, ADR 0027),
 * on a connection of their own that keeps an offline queue (a round asked before it first
 * connects waits for it; one asked while it reconnects fails at once, counted, and the answer
 * goes out).
 */
function createReplicaWait(
  redis: RedisClient,
  config: Config,
  keys: Keys,
  logger: Logger,
  metrics: CascadeMetrics,
): { wait: ReplicaWait; connection: RedisClient } | undefined {
  const { API_REPLICA_ACKS: replicas, API_REPLICA_WAIT_MS: timeoutMs } = config.settings;
  if (replicas === 0) return undefined;
  const connection = duplicateWith(
    redis,
    { enableOfflineQueue: true, commandTimeout: timeoutMs + BACKGROUND_COMMAND_TIMEOUT_MS },
    { enableOfflineQueue: true },
  );
  connection.on("error", (error: Error) =>
    logger.warn({ err: error.message, source: "replica waits" }, "redis connection error; retrying"),
  );
  let lastWarnAt = Number.NEGATIVE_INFINITY;
  let unreported = 0;
  const wait = new ReplicaWait({
    redis: connection,
    markKey: keys.replicaMark,
    replicas,
    timeoutMs,
    onRound: (outcome, detail) => {
      metrics.replicaWait(outcome);
      if (outcome === "acked") return;
      unreported += 1;
      const now = Date.now();
      if (now - lastWarnAt < REPLICA_WARN_INTERVAL_MS) return;
      lastWarnAt = now;
      logger.warn(
        {
          setting: "API_REPLICA_ACKS",
          replicas,
          acked: detail.acked,
          err: detail.error?.message,
          rounds: unreported,
        },
        outcome === "short"
          ? `fewer than API_REPLICA_ACKS=${replicas} replicas acknowledged within API_REPLICA_WAIT_MS=${timeoutMs}; answered anyway (the writes are on the master)`
          : "could not wait for replicas; answered anyway (the writes are on the master)",
      );
      unreported = 0;
    },
  });
  return { wait, connection };
}

/**
 * Builds the API without listening: main.ts listens, tests use `app.inject` or listen on port 0.
 * The API's composition root: its keys, queues and stores are built here, once, and passed down.
 */
export function buildApp(deps: AppDeps): CascadeApp {
  const { config, redis, logger } = deps;
  const retention = config.settings.JOB_RETENTION_S;
  const keys = createKeys(config.settings.CASCADE_REDIS_PREFIX);
  const queue = createQueue<JobData, JobOutcome>(QUEUE_NAMES.completions, {
    connection: redis,
    prefix: keys.bullPrefix,
    logger,
  });
  const webhookQueue: WebhookQueue = createQueue(QUEUE_NAMES.webhooks, {
    connection: redis,
    prefix: keys.bullPrefix,
    logger,
  });
  const webhookStore = new WebhookDeliveryStore(
    redis,
    keys,
    deliveryRetentionSeconds(retention, config.file.webhooks.retry_schedule_ms),
  );
  // Every connection reports its errors to the log: an ioredis client without an error listener
  // prints "[ioredis] Unhandled error event" dumps outside the JSON log.
  const logRedisError = (source: string) => (error: Error) =>
    logger.warn({ err: error.message, source }, "redis connection error; retrying");
  const background = backgroundConnection(redis);
  background.on("error", logRedisError("background work"));
  const backgroundQueues = {
    completions: createQueue<JobData, JobOutcome>(QUEUE_NAMES.completions, {
      connection: background,
      prefix: keys.bullPrefix,
      logger,
    }),
    webhooks: createQueue(QUEUE_NAMES.webhooks, { connection: background, prefix: keys.bullPrefix, logger }),
  };
  // Streaming jobs' event streams and the queue's BullMQ events (read only while a `?wait=` or
  // an event-stream reader needs them): one blocking XREAD for every reader of this process.
  const streamsConnection = readerConnection(
    redis,
    `cascade-api-events-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  streamsConnection.on("error", logRedisError("job event streams"));
  const streams = new StreamReader(streamsConnection, redis, logger);
  const waiters = new JobWaiters(streams, redis, keys.completionQueueEvents, logger);
  /** The job event streams open now (GET /v1/jobs/:id/events), ended on close. */
  const eventStreams = new OpenEventStreams();
  const openRequests = new OpenRequests(config);
  const gatewayRuns = new GatewayRuns();
  const store = new JobStore(
    queue,
    redis,
    keys,
    retention,
    weightsFromConfig(config.file.tenants),
    (message) => logger.warn(message),
    async (jobId, progress) => {
      let lost: Awaited<ReturnType<Resilience["lostCalls"]>>;
      try {
        lost = await resilience.lostCalls(jobId, progress);
      } catch (error) {
        // Redis away: the cancel answers 503 as any request would. Anything else: the job is
        // cancelled without them, as before the journal named its calls (the books have them).
        if (isRedisUnavailableError(error)) throw error;
        logger.warn(
          { job_id: jobId, err: (error as Error).message },
          "could not look for calls a stalled run left in flight",
        );
        return progress;
      }
      return withLostCalls(progress, lost, { jobId, config, clock, logger });
    },
  );
  const providerStatus = new ProviderStatusStore(redis, config, keys, logger);
  // The gateway's engine: the same breakers, buckets, budgets and usage records as the workers'.
  const clock = deps.clock ?? systemClock;
  // Its recovery of dead workers' calls keeps each job's record of them as long as the job.
  const resilience = new Resilience(redis, config, keys, logger, clock, { lostCallTtlMs: retention * 1000 });
  // This process's metrics (GET /metrics adds the deployment-wide gauges read from Redis).
  const metrics = createMetrics();
  resilience.onBreakerTransition(metrics.breakerTransition);
  providerStatus.onOverride(metrics.breakerTransition);
  // Breaker and cooldown announcements need a connection in subscriber mode of their own.
  const breakerSubscriber = readerConnection(redis);
  breakerSubscriber.on("error", logRedisError("breaker announcements"));
  // Every finished gateway request is told to these (metrics, usage counts, alerts).
  const requestObservers: RequestObserver[] = [
    requestMetricsObserver(metrics),
    ...createRequestRecorders({ config, redis, keys, logger }),
  ];
  if (deps.observer) requestObservers.push(deps.observer);
  const requestObserver = observeAll(requestObservers, (error) =>
    logger.error({ err: error }, "a request observer failed"),
  );
  // Alert rules: evaluated by one process at a time (a Redis lease), from the API or a worker.
  const alerts = new AlertEvaluator({
    config,
    redis,
    keys,
    logger,
    webhookQueue,
    ...(deps.alertIntervalMs ? { intervalMs: deps.alertIntervalMs } : {}),
  });
  const gateway = new GatewayRunner({
    config,
    providers: deps.providers ?? createProviderRegistry(config, { missingKey: "fail-calls" }),
    resilience,
    clock,
    logger,
    metrics,
  });
  const app: FastifyInstance = fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    // Per-hop lines from workers are the useful log; per-request lines would drown them.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: "idle",
    // A request not sent in full in time (a stalled upload, a body shorter than its length) is a
    // 408 rather than a socket held for ever (Fastify's default is no limit).
    requestTimeout: REQUEST_TIMEOUT_MS,
    // Requests Node's parser refuses are answered in the contract's shape too.
    clientErrorHandler: answerClientError,
    // Node's own answer to an HTTP/1.1 request without Host is a bare 400: the auth hook's is not.
    http: { requireHostHeader: false },
    // Errors Fastify raises before routing (a malformed URL) skip setErrorHandler: same shape here.
    frameworkErrors: (error, _request, reply) => {
      sendError(reply, 400, "invalid_request_error", error.message);
    },
  });
  answerProtocolRefusals(app.server);
  // Only JSON bodies (multipart comes with the files API); text/plain must be a 415, not a string.
  app.removeContentTypeParser("text/plain");
  // An empty body sent as JSON is no body (Stainless-built SDKs, openai-python among them, send
  // `Content-Type: application/json` on a bodyless POST such as a batch cancel): the route answers
  // as for no body, and one that needs a body says so through its schema. Any other body goes to
  // Fastify's own parser (secure-json-parse, prototype poisoning refused). What it refuses may be
  // valid JSON holding a prototype key: that is a 400 naming the key, not "not valid JSON".
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, raw, done) => {
    const bytes = raw as Buffer;
    const body = bytes.toString("utf8");
    const charset = unsupportedJsonCharset(request.headers["content-type"], body);
    if (charset) return done(charset, undefined);
    if (body === "") return done(null, undefined);
    // Read as UTF-8, a byte that is not would become U+FFFD and go upstream (and be charged) so.
    if (changedByDecoding(body, bytes)) return done(notUtf8(), undefined);
    parseJson(request, body, (error, value) => {
      if (error) return done(prototypeKeyError(body) ?? error, undefined);
      done(null, value);
    });
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const routes: Array<{ method: string; pattern: RegExp }> = [];
  const declared: RouteOptions[] = [];
  app.addHook("onRoute", (route) => {
    const access = route.config?.access;
    if (access !== undefined && !ROUTE_ACCESS.includes(access)) {
      throw new Error(`route ${route.url} declares access "${access}"; use ${ROUTE_ACCESS.join(", ")}`);
    }
    declared.push(route);
    for (const method of [route.method].flat()) {
      if (method !== "HEAD") routes.push({ method, pattern: routePattern(route.url) });
    }
  });
  const unrouted = registerErrorHandling(app, routes);
  // First of the onRequest hooks: a request pipelined behind a refused body is not run.
  registerLingeringClose(app);
  registerAuth(app, config, unrouted);
  registerBodyDeadline(app);
  registerRedisGate(app, redis, config.settings.API_REDIS_WAIT_MS);
  const replicaWait = createReplicaWait(redis, config, keys, logger, metrics);
  if (replicaWait) registerReplicaWait(app, replicaWait.wait);
  registerContentEncodingCheck(app);
  registerBodyDepthLimit(app);
  app.register(fastifySwagger, {
    openapi: {
      info: { title: "Cascade", description: "Reliable LLM completions at volume", version: "0.1.0" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: describeRealAnswers,
  });
  app.register(async (docs) => {
    markRoutesPublic(docs);
    await docs.register(fastifySwaggerUi, { routePrefix: "/docs" });
  });
  registerQueueBoard(app, { queues: [backgroundQueues.completions, backgroundQueues.webhooks] });
  // Routes go in a plugin so the OpenAPI generator (registered above) sees every one of them.
  app.register(async (instance) => {
    registerOpsRoutes(instance, { pingRedis: () => redis.ping(), connected: () => redis.status === "ready" });
    registerProviderRoutes(instance, { config, providers: providerStatus });
    registerUsageRoutes(instance, { usage: new UsageStore(redis, keys), clock: deps.clock ?? systemClock });
    registerMetricsRoute(instance, {
      metrics,
      providerStatus: () => providerStatus.read(),
      queues: { [QUEUE_NAMES.completions]: queue, [QUEUE_NAMES.webhooks]: webhookQueue },
      redis,
      alertsFiring: () => alertsFiringSamples(alerts.store),
      redisWaitMs: config.settings.API_REDIS_WAIT_MS,
      now: () => clock.now(),
    });
    registerJobRoutes(instance, {
      config,
      store,
      waiters,
      idempotency: new IdempotencyKeys(redis, keys),
      observer: requestObserver,
      clock: deps.clock ?? systemClock,
      newId: deps.newId ?? ((prefix) => newId(prefix)),
      openRequests,
      webhooks: createApiWebhooks({
        config,
        queue: webhookQueue,
        ...(deps.resolveHost ? { resolve: deps.resolveHost } : {}),
      }),
    });
    registerWebhookDeliveryRoutes(instance, { store: webhookStore, queue: webhookQueue });
    registerAlertRoutes(instance, { alerts: alerts.store, deliveries: webhookStore, queue: webhookQueue });
    registerDashboardRoutes(instance, {
      config,
      redis,
      keys,
      queue,
      providers: providerStatus,
      usage: new UsageStore(redis, keys),
      clock,
    });
    registerGatewayRoutes(instance, {
      config,
      runner: gateway,
      clock,
      newId: deps.newId ?? ((prefix) => newId(prefix)),
      observer: requestObserver,
      openRequests,
      runs: gatewayRuns,
    });
    registerJobEventRoutes(instance, { store, waiters, streams, keys, open: eventStreams, openRequests });
    registerBatchApi(instance, {
      config,
      store: new BatchStore(redis, keys, retention),
      files: new FileStore(redis, keys, retention),
      queue,
      background: { store: new BatchStore(background, keys, retention), queue: backgroundQueues.completions },
      logger,
      newId: deps.newId ?? ((prefix) => newId(prefix)),
      counts: { observer: requestObserver, now: () => clock.now() },
    });
  });
  return {
    app,
    routeTable: () =>
      declared.flatMap((route) =>
        [route.method]
          .flat()
          .filter((method) => method !== "HEAD")
          .map((method) => ({ method, url: route.url, access: route.config?.access ?? "tenant" })),
      ),
    async ready() {
      // Each queue checks Redis's version once (BullMQ's INFO at start): a failed check would
      // fail that queue's every later command, so the API does not start without both.
      await Promise.all([
        queue.waitUntilReady(),
        webhookQueue.waitUntilReady(),
        backgroundQueues.completions.waitUntilReady(),
        backgroundQueues.webhooks.waitUntilReady(),
        waiters.ready(),
        app.ready(),
        resilience.listen(breakerSubscriber),
      ]);
      alerts.start();
      // Calls a killed process left in flight are charged by whichever process finds them (0033).
      resilience.recoverStrandedCalls((charge) => requestObserver.charged?.(charge));
      // One round now: too few replicas is logged at start rather than at the first write.
      void replicaWait?.wait.probe();
    },
    stopGatewayRequests() {
      gatewayRuns.stopAll();
      // Their connections, idle once the answers are written, would hold the close till the end.
      setTimeout(() => app.server.closeIdleConnections(), STOPPED_ANSWERS_MS).unref();
    },
    async close() {
      // Answer every ?wait request now with the job as it is, rather than holding shutdown up.
      await waiters.close();
      // Event streams are ended cleanly: their clients reconnect (to another API) with Last-Event-ID.
      eventStreams.close();
      streams.close();
      await app.close();
      // The last gateway requests' usage, dashboard and alert counts (gathered, written every 200 ms).
      await resilience.journal.stopRecovery();
      await requestObserver.close?.();
      await alerts.stop();
      // The gateway's last settlements (spend, usage) are written before the process goes.
      await resilience.close();
      breakerSubscriber.disconnect();
      await queue.close();
      await webhookQueue.close();
      await backgroundQueues.completions.close();
      await backgroundQueues.webhooks.close();
      await background.quit().catch(() => background.disconnect());
      await replicaWait?.connection.quit().catch(() => replicaWait.connection.disconnect());
    },
  };
}
