import {
  COALESCE_MAX_HOLD_MS,
  ConfigError,
  createRedis,
  deploymentKey,
  redactRedisUrl,
  startProcess,
  watchRedisComebacks,
} from "@cascade/shared";
import { buildApp } from "./app.js";

/** The shortest command timeout, whatever API_REDIS_WAIT_MS says (0 means: do not wait for a reconnect). */
const MIN_COMMAND_TIMEOUT_MS = 1000;

async function main(): Promise<void> {
  const { config, logger, redisCheck, fail } = await startProcess("api", process.env);
  const { settings } = config;
  // No offline queue: a request must not be held until Redis returns. It waits at most
  // API_REDIS_WAIT_MS for the connection (plugins/redis-gate.ts), then gets a 503. A Redis that
  // keeps the connection and stops answering (a stalled host) gets the same bound: a command
  // gives up after API_REDIS_WAIT_MS (at least MIN_COMMAND_TIMEOUT_MS) and the request gets a
  // 503 (ADR 0015). A request's commands are small (uploads go in chunks); work that is no
  // request's wait (a batch's enqueue, the admin board's clean) has its own connection with a long
  // timeout (app.ts, backgroundConnection). No retry of a command whose connection closed under it
  // either: with BullMQ's `maxRetriesPerRequest: null` it would wait for the reconnect (the
  // command timeout, or Redis's return) instead of failing at once.
  const redis = createRedis(settings.REDIS_URL, {
    cluster: redisCheck.cluster,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: Math.max(settings.API_REDIS_WAIT_MS, MIN_COMMAND_TIMEOUT_MS),
    // Each event-loop turn's commands (one per request being enqueued, many at load) leave in
    // one socket write: ~20 µs less API CPU and ~15 µs less Redis CPU per enqueue at 50
    // connections (docs/decisions/0025-coalesced-redis-writes.md).
    coalesceWrites: true,
    // …and a write made 0.25 ms or more after the first held one sends what is held: a busy
    // turn's first adds go while it handles later requests, and their replies are in by the next
    // turn (ADR 0025's revision: bench:enqueue 0.80–0.85 → 0.85–0.95 of the bare endpoint).
    coalesceMaxHoldMs: COALESCE_MAX_HOLD_MS,
  });
  redis.on("error", (error: Error) =>
    logger.warn({ err: error.message }, "redis connection error; retrying"),
  );
  watchRedisComebacks(redis, logger, settings.REDIS_URL);

  // The gateway calls providers from this process: one whose key is not set here fails its calls
  // (auth_error) and chains fall back past it. Say so now rather than at the first request.
  for (const [id, provider] of Object.entries(config.file.providers)) {
    if (provider.api_key_env && !config.providerKeys.has(id)) {
      logger.warn(
        { provider: id, setting: `providers.${id}.api_key_env` },
        `environment variable ${provider.api_key_env} is not set on the API: the gateway cannot call provider ${id}; export it here too`,
      );
    }
  }
  // A pooled model's deployment with a key of its own: the same, for that deployment's calls.
  for (const [modelId, model] of Object.entries(config.file.models)) {
    for (const [index, deployment] of (model.deployments ?? []).entries()) {
      if (!deployment.api_key_env || config.providerKeys.has(deploymentKey(modelId, deployment.id))) continue;
      const setting = `models.${modelId}.deployments.${index}.api_key_env`;
      logger.warn(
        { model: modelId, deployment: deployment.id, setting },
        `environment variable ${deployment.api_key_env} (${setting}) is not set on the API: the gateway cannot call deployment ${deployment.id} of ${modelId}; export it here too`,
      );
    }
  }
  const cascade = buildApp({ config, redis, logger });
  await cascade.ready();
  try {
    await cascade.app.listen({ port: settings.PORT, host: settings.HOST });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    fail(
      new ConfigError(
        code === "EADDRINUSE"
          ? `PORT ${settings.PORT} on ${settings.HOST} is already in use; stop the other process or set PORT to a free port`
          : `cannot listen on ${settings.HOST}:${settings.PORT} (${(error as Error).message}); check HOST and PORT`,
      ),
    );
  }
  logger.info(
    { redis: redactRedisUrl(settings.REDIS_URL), config: config.source, openMode: config.openMode },
    "cascade api started",
  );

  let stopping = false;
  // The log's last lines are written synchronously by its exit hook (createLogDestination).
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping: no new requests, draining in-flight ones");
    const force = setTimeout(() => {
      logger.warn("drain took too long; exiting");
      process.exit(0);
    }, settings.SHUTDOWN_TIMEOUT_MS);
    force.unref();
    // Gateway requests still open near the end are answered (503, or a stream's error event) in
    // time to be written, rather than cut off with no answer at the exit.
    const answerOpen = setTimeout(
      () => cascade.stopGatewayRequests(),
      Math.max(0, settings.SHUTDOWN_TIMEOUT_MS - Math.min(1_000, settings.SHUTDOWN_TIMEOUT_MS / 4)),
    );
    answerOpen.unref();
    try {
      await cascade.close();
      await redis.quit().catch(() => redis.disconnect());
      logger.info("api stopped");
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, "error while stopping");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((error) => {
  process.stderr.write(`cascade api: failed to start: ${(error as Error)?.stack ?? error}\n`);
  process.exit(1);
});
