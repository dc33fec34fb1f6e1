import { createProviderRegistry, Resilience } from "@cascade/engine";
import {
  AlertEvaluator,
  type CompletionQueue,
  ConfigError,
  createKeys,
  createMetrics,
  createRedis,
  createRequestRecorders,
  FairTags,
  observeAll,
  QUEUE_NAMES,
  type RequestObserver,
  redactRedisUrl,
  requestMetricsObserver,
  startProcess,
  systemClock,
  type WebhookQueue,
  watchRedisComebacks,
} from "@cascade/shared";
import { createBatchProcessing, createQueue } from "@cascade/shared/bullmq";
import { createCompletionWorker } from "./completion/completion-worker.js";
import { startFairSweep } from "./fairness/fair-sweep.js";
import { listenForCancellations } from "./lifecycle/cancel-listener.js";
import { startMetricsServer } from "./metrics-server.js";
import { createFailedJobsSweep } from "./webhooks/failed-jobs-sweep.js";
import { resolveTenantSecrets } from "./webhooks/tenant-secrets.js";
import { createWebhookNotifier } from "./webhooks/webhook-notifier.js";
import { createWebhookWorker } from "./webhooks/webhook-worker.js";

/** The worker process's composition root: keys, connections, queues and stores are built here. */
async function main(): Promise<void> {
  const { config, logger, redisCheck, fail } = await startProcess("worker", process.env);
  const { settings } = config;
  const providers = (() => {
    try {
      // One upstream connection per job slot, per provider (unless its config sets `connections`).
      return createProviderRegistry(config, { connections: settings.WORKER_CONCURRENCY });
    } catch (error) {
      return fail(error);
    }
  })();
  const webhookSecrets = (() => {
    try {
      return resolveTenantSecrets(config);
    } catch (error) {
      return fail(error);
    }
  })();

  // One socket write per event-loop turn, no batch waiting for the replies of the one before (0025).
  const connection = createRedis(settings.REDIS_URL, { cluster: redisCheck.cluster, coalesceWrites: true });
  const subscriber = createRedis(settings.REDIS_URL, { cluster: redisCheck.cluster });
  for (const client of [connection, subscriber]) {
    client.on("error", (error: Error) =>
      logger.warn({ err: error.message }, "redis connection error; retrying"),
    );
  }
  watchRedisComebacks(connection, logger, settings.REDIS_URL);
  const keys = createKeys(settings.CASCADE_REDIS_PREFIX);
  // Fair share's scripts are defined on the connection before any traffic (batch enqueues use it
  // too); this process takes its turn at the sweep that fixes jobs queued across a rebase.
  const stopFairSweep = startFairSweep(new FairTags(connection, keys), logger);
  // Producers and readers of both queues share one Queue each (a Worker is its own consumer).
  const completionQueue: CompletionQueue = createQueue(QUEUE_NAMES.completions, {
    connection,
    prefix: keys.bullPrefix,
    logger,
  });
  const webhookQueue: WebhookQueue = createQueue(QUEUE_NAMES.webhooks, {
    connection,
    prefix: keys.bullPrefix,
    logger,
  });
  const webhookNotifier = createWebhookNotifier({ config, queue: webhookQueue, logger, clock: systemClock });
  // A worker silent for its lock duration (10–30 s) has lost its jobs: its calls in flight are
  // charged by another process then (ADR 0033).
  const resilience = new Resilience(connection, config, keys, logger, systemClock, {
    staleMs: Math.min(30_000, Math.max(10_000, settings.WORKER_LOCK_DURATION_MS)),
    // A job's record of the calls a dead process left is kept as long as the job.
    lostCallTtlMs: settings.JOB_RETENTION_S * 1000,
  });
  // This process's metrics, served on METRICS_PORT when set (counters are per process).
  const metrics = createMetrics();
  resilience.onBreakerTransition(metrics.breakerTransition);
  // Listening before any job is taken: a port in use stops the process with nothing in flight.
  const metricsServer =
    settings.METRICS_PORT === undefined
      ? undefined
      : await startMetricsServer(metrics.registry, {
          host: settings.HOST,
          port: settings.METRICS_PORT,
          onError: (error) => logger.error({ err: error }, "could not render metrics"),
        }).catch((error: unknown) =>
          fail(
            new ConfigError(
              (error as NodeJS.ErrnoException).code === "EADDRINUSE"
                ? `METRICS_PORT ${settings.METRICS_PORT} on ${settings.HOST} is already in use; stop the other process or set METRICS_PORT to a free port`
                : `cannot serve metrics on ${settings.HOST}:${settings.METRICS_PORT} (${(error as Error).message}); check HOST and METRICS_PORT`,
            ),
          ),
        );
  // Every job that ends here is told to these (metrics, usage counts, alerts).
  // Usage, dashboard, alert and provider counts are gathered in memory and written every 200 ms (0023).
  const requestObservers: RequestObserver[] = [
    ...createRequestRecorders({ config, redis: connection, keys, logger }),
    requestMetricsObserver(metrics),
  ];
  const observer = observeAll(requestObservers, (error) =>
    logger.error({ err: error }, "a request observer failed"),
  );
  // Calls a killed process left in flight are charged by whichever process finds them (0033).
  resilience.recoverStrandedCalls((charge) => observer.charged?.(charge));
  // Lines a cancel or expiry takes back are counted as the cancelled jobs they are.
  const batches = createBatchProcessing({
    config,
    connection,
    keys,
    queue: completionQueue,
    logger,
    counts: { observer, now: () => systemClock.now() },
  });
  // Jobs BullMQ failed for good whose worker died (or whose enqueue gave up) before telling their
  // webhook and usage counts: told by one process per lock duration, from a cursor (ADR 0024).
  const failedJobs = createFailedJobsSweep({
    config,
    connection,
    keys,
    completions: completionQueue,
    webhooks: webhookQueue,
    logger,
    clock: systemClock,
    observer,
    intervalMs: settings.WORKER_LOCK_DURATION_MS,
    settleMs: 2 * settings.WORKER_LOCK_DURATION_MS,
  });
  const completions = createCompletionWorker({
    config,
    connection,
    keys,
    providers,
    logger,
    clock: systemClock,
    concurrency: settings.WORKER_CONCURRENCY,
    lockDurationMs: settings.WORKER_LOCK_DURATION_MS,
    resilience,
    metrics,
    // Queued before the result is stored, so a crash in between still notifies (the delivery
    // id derives from the job id, and it is sent with the job as stored once it has ended).
    // Batch lines are recorded after the result is stored (batches.watch), from what was stored.
    onFinished: (job, data, outcome) => webhookNotifier.onFinished(job, data, outcome),
    observer,
    claimFailureCount: (jobId) => failedJobs.claimCount(jobId),
  });
  failedJobs.start();
  batches.watch(completions.worker);
  batches.start();
  const webhooks = createWebhookWorker({
    config,
    connection,
    keys,
    completions: completionQueue,
    logger,
    clock: systemClock,
    secrets: webhookSecrets,
    lockDurationMs: settings.WORKER_LOCK_DURATION_MS,
    onDeliveryAttempt: metrics.webhookDelivery,
  });
  // Alert rules: evaluated by one process at a time (a Redis lease), from the API or a worker.
  const alerts = new AlertEvaluator({ config, redis: connection, keys, logger, webhookQueue });
  alerts.start();
  await resilience.listen(subscriber);
  await listenForCancellations(subscriber, keys, logger, (jobId) =>
    completions.interrupt(jobId, "cancelled"),
  );
  logger.info(
    {
      redis: redactRedisUrl(settings.REDIS_URL),
      concurrency: settings.WORKER_CONCURRENCY,
      ...(metricsServer ? { metrics_port: metricsServer.port } : {}),
      config: config.source,
    },
    "cascade worker started",
  );

  let stopping = false;
  // Every exit below leaves the log's last lines to its exit hook, which writes them synchronously
  // (a flush just before process.exit would start an asynchronous write the exit cannot wait for).
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping: finishing running jobs, handing back the rest");
    // With Redis gone, closing could wait for it forever: jobs not handed back are recovered
    // by other workers after the lock duration anyway, so give up after the grace and a margin.
    const force = setTimeout(() => {
      logger.error("could not stop cleanly (is Redis reachable?); exiting");
      process.exit(1);
    }, settings.SHUTDOWN_TIMEOUT_MS + 10_000);
    force.unref();
    try {
      await Promise.all([
        // Batch lines of the last jobs are recorded once those jobs are stored: close after them.
        completions.close(settings.SHUTDOWN_TIMEOUT_MS).then(() => batches.close()),
        webhooks.close(settings.SHUTDOWN_TIMEOUT_MS),
      ]);
      // The sweep and the journal recovery count too: stop them before the counts' last write.
      await failedJobs.stop();
      await resilience.journal.stopRecovery();
      // The last jobs' usage, dashboard and alert counts, once no job can end any more.
      await observer.close?.();
      await alerts.stop();
      stopFairSweep();
      await resilience.close();
      await metricsServer?.close();
      await Promise.all([completionQueue.close(), webhookQueue.close()]);
      subscriber.disconnect();
      await connection.quit().catch(() => connection.disconnect());
      logger.info("worker stopped");
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, "error while stopping");
      // The counts gathered so far are still written (closing twice is harmless), the sweep first.
      await failedJobs.stop().catch(() => {});
      await observer.close?.().catch(() => {});
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((error) => {
  process.stderr.write(`cascade worker: failed to start: ${(error as Error)?.stack ?? error}\n`);
  process.exit(1);
});
