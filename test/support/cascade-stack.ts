import { randomBytes } from "node:crypto";
import { buildApp, type CascadeApp } from "@cascade/api";
import { createProviderRegistry, type HostResolver, Resilience } from "@cascade/engine";
import {
  type CompletionQueue,
  type Config,
  createKeys,
  createRequestRecorders,
  type JobData,
  type JobOutcome,
  loadConfig,
  observeAll,
  QUEUE_NAMES,
  type RedisClient,
  type RequestObserver,
  systemClock,
  type WebhookQueue,
} from "@cascade/shared";
import { type BatchProcessing, createBatchProcessing, createQueue } from "@cascade/shared/bullmq";
import {
  type CompletionWorker,
  createCompletionWorker,
  createWebhookNotifier,
  createWebhookWorker,
  listenForCancellations,
  type WebhookWorker,
} from "@cascade/worker";
import { pino } from "pino";
import { testRedis } from "./redis-clients.js";

export interface StackOptions {
  redisUrl: string;
  /** The config file's content (as parsed YAML/JSON). */
  config: unknown;
  env?: Record<string, string>;
  /** Start no worker (to test queued jobs); call startWorker() later. */
  withoutWorker?: boolean;
  concurrency?: number;
  /**
   * The webhook worker's per-delivery timeout, and resolvers for the URL guard: the API's at
   * enqueue and the worker's at connect time (tests play DNS with them).
   */
  webhooks?: { timeoutMs?: number; apiResolve?: HostResolver; workerResolve?: HostResolver };
  /** The batch sweeper's pace (it starts with the first worker). */
  batches?: { sweepIntervalMs?: number; idleMs?: number };
  /** Between alert evaluations of the API's evaluator (default 2 s). */
  alertIntervalMs?: number;
  /**
   * Runs in the workers' `onFinished`, before the job's webhook is queued: a test stands in for
   * slow bookkeeping after a job's answer (a Redis that is slow to take the webhook) with it.
   */
  beforeFinished?: (data: JobData, outcome: JobOutcome) => Promise<void>;
}

export interface Stack {
  config: Config;
  url: string;
  app: CascadeApp;
  redis: RedisClient;
  workers: CompletionWorker[];
  webhookWorker: WebhookWorker;
  /** Batch line recording and the batch sweeper, as a worker process runs them. */
  batches: BatchProcessing;
  startWorker(concurrency?: number): Promise<CompletionWorker>;
  request(
    method: string,
    path: string,
    options?: { body?: unknown; headers?: Record<string, string> },
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
  ): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

/** A unique Redis prefix per test file, so tests never see each other's keys. */
export function uniquePrefix(label: string): string {
  return `test-${label}-${randomBytes(4).toString("hex")}`;
}

/**
 * API and worker in this process, over real Redis and real HTTP (the API listens on a free
 * port). Cross-process behaviour (crashes, signals) is covered by the e2e tests instead.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const config = loadConfig(
    {
      REDIS_URL: options.redisUrl,
      CASCADE_REDIS_PREFIX: uniquePrefix("stack"),
      WORKER_LOCK_DURATION_MS: "5000",
      ...options.env,
    },
    { raw: options.config },
  );
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const redis = testRedis(options.redisUrl);
  const app = buildApp({
    config,
    redis,
    logger,
    ...(options.webhooks?.apiResolve ? { resolveHost: options.webhooks.apiResolve } : {}),
    ...(options.alertIntervalMs ? { alertIntervalMs: options.alertIntervalMs } : {}),
  });
  await app.ready();
  await app.app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const workers: CompletionWorker[] = [];
  const resilienceInstances: Resilience[] = [];
  const connections: RedisClient[] = [redis];
  // As packages/worker/src/main.ts composes a worker process: keys and queues built once here.
  const keys = createKeys(config.settings.CASCADE_REDIS_PREFIX);
  const webhookConnection = testRedis(options.redisUrl);
  connections.push(webhookConnection);
  const completionQueue: CompletionQueue = createQueue(QUEUE_NAMES.completions, {
    connection: webhookConnection,
    prefix: keys.bullPrefix,
    logger,
  });
  const webhookQueue: WebhookQueue = createQueue(QUEUE_NAMES.webhooks, {
    connection: webhookConnection,
    prefix: keys.bullPrefix,
    logger,
  });
  const webhookNotifier = createWebhookNotifier({ config, queue: webhookQueue, logger, clock: systemClock });
  const batches = createBatchProcessing({
    config,
    connection: webhookConnection,
    keys,
    queue: completionQueue,
    logger,
    ...options.batches,
  });
  const webhookWorker = createWebhookWorker({
    config,
    connection: webhookConnection,
    keys,
    completions: completionQueue,
    logger,
    clock: systemClock,
    ...(options.webhooks?.timeoutMs ? { timeoutMs: options.webhooks.timeoutMs } : {}),
    ...(options.webhooks?.workerResolve ? { resolve: options.webhooks.workerResolve } : {}),
  });
  await webhookWorker.worker.waitUntilReady();

  // Their counts are written every 200 ms; close() writes the rest before the connections go.
  const observers: RequestObserver[] = [];
  async function startWorker(concurrency = options.concurrency ?? 10): Promise<CompletionWorker> {
    const connection = testRedis(options.redisUrl, { coalesceWrites: true });
    const subscriber = testRedis(options.redisUrl);
    connections.push(connection, subscriber);
    const resilience = new Resilience(connection, config, keys, logger, systemClock);
    await resilience.listen(subscriber);
    resilienceInstances.push(resilience);
    const observer = observeAll(
      createRequestRecorders({ config, redis: connection, keys, logger }),
      () => {},
    );
    observers.push(observer);
    const worker = createCompletionWorker({
      config,
      connection,
      keys,
      providers: createProviderRegistry(config),
      logger,
      clock: systemClock,
      concurrency,
      lockDurationMs: config.settings.WORKER_LOCK_DURATION_MS,
      resilience,
      onFinished: async (job, data, outcome) => {
        await options.beforeFinished?.(data, outcome);
        await webhookNotifier.onFinished(job, data, outcome);
      },
      // As in worker main.ts: jobs' usage counts (GET /v1/usage routes, models, weekly).
      // and the alerts' per-route windows.
      observer,
    });
    await listenForCancellations(subscriber, keys, logger, (jobId) => worker.interrupt(jobId, "cancelled"));
    await worker.worker.waitUntilReady();
    batches.watch(worker.worker);
    batches.start();
    workers.push(worker);
    return worker;
  }
  if (!options.withoutWorker) await startWorker();

  return {
    config,
    url,
    app,
    redis,
    workers,
    webhookWorker,
    batches,
    startWorker,
    async request(method, path, requestOptions = {}) {
      const headers: Record<string, string> = { ...requestOptions.headers };
      if (requestOptions.body !== undefined) headers["content-type"] ??= "application/json";
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        body:
          requestOptions.body === undefined
            ? undefined
            : typeof requestOptions.body === "string"
              ? requestOptions.body
              : JSON.stringify(requestOptions.body),
      });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {}
      return { status: response.status, body, headers: response.headers };
    },
    async close() {
      await Promise.all([
        ...workers.map((worker) => worker.close(1000)),
        webhookWorker.close(1000),
        batches.close(),
      ]);
      await Promise.all(observers.map((observer) => observer.close?.()));
      await Promise.all(resilienceInstances.map((resilience) => resilience.close()));
      await Promise.all([completionQueue.close(), webhookQueue.close()]);
      await app.close();
      for (const connection of connections) connection.disconnect();
    },
  };
}

/**
 * An API with no worker, one simulated model and a tenant per key (`{ acme: "key-a" }`): what
 * the request-edge tests (bodies, uploads, list cursors) need, on the run's Redis.
 */
export function startTenantsApi(redisUrl: string, keysByTenant: Record<string, string>): Promise<Stack> {
  const entries = Object.entries(keysByTenant);
  const envName = (tenant: string) => `${tenant.toUpperCase()}_KEYS`;
  return startStack({
    redisUrl,
    withoutWorker: true,
    env: Object.fromEntries(entries.map(([tenant, key]) => [envName(tenant), key])),
    config: {
      providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
      models: { m: { provider: "sim" } },
      routes: { default: { chain: [{ model: "m" }] } },
      tenants: Object.fromEntries(entries.map(([tenant]) => [tenant, { api_keys_env: envName(tenant) }])),
    },
  });
}
