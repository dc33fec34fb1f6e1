import { randomBytes } from "node:crypto";
import { buildApp, type CascadeApp } from "@cascade/api";
import {
  type Config,
  createKeys,
  createRedis,
  loadConfig,
  type RedisClient,
  systemClock,
} from "@cascade/shared";
import {
  type CompletionWorker,
  createCompletionWorker,
  createProviderRegistry,
  listenForCancellations,
  Resilience,
} from "@cascade/worker";
import { pino } from "pino";

export interface StackOptions {
  redisUrl: string;
  /** The config file's content (as parsed YAML/JSON). */
  config: unknown;
  env?: Record<string, string>;
  /** Start no worker (to test queued jobs); call startWorker() later. */
  withoutWorker?: boolean;
  concurrency?: number;
}

export interface Stack {
  config: Config;
  url: string;
  app: CascadeApp;
  redis: RedisClient;
  workers: CompletionWorker[];
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
  const redis = createRedis(options.redisUrl);
  const app = buildApp({ config, redis, logger });
  await app.ready();
  await app.app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const workers: CompletionWorker[] = [];
  const connections: RedisClient[] = [redis];

  async function startWorker(concurrency = options.concurrency ?? 10): Promise<CompletionWorker> {
    const connection = createRedis(options.redisUrl);
    const subscriber = createRedis(options.redisUrl);
    connections.push(connection, subscriber);
    const worker = createCompletionWorker({
      config,
      connection,
      providers: createProviderRegistry(config),
      logger,
      clock: systemClock,
      concurrency,
      lockDurationMs: config.settings.WORKER_LOCK_DURATION_MS,
      resilience: new Resilience(
        connection,
        config,
        createKeys(config.settings.CASCADE_REDIS_PREFIX),
        logger,
      ),
    });
    await listenForCancellations(subscriber, config, logger, (jobId) => worker.interrupt(jobId, "cancelled"));
    await worker.worker.waitUntilReady();
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
      await Promise.all(workers.map((worker) => worker.close(1000)));
      await app.close();
      for (const connection of connections) connection.disconnect();
    },
  };
}
