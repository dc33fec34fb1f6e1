import { createGuardedDispatcher, type HostResolver } from "@cascade/engine";
import {
  bullConnection,
  type Clock,
  type CompletionQueue,
  type Config,
  type DeliveryStatus,
  deliveryRetentionSeconds,
  formatZodError,
  type Keys,
  type Logger,
  OPERATORS_OWNER,
  QUEUE_NAMES,
  type RedisClient,
  WEBHOOK_BACKOFF_TYPE,
  WebhookDeliveryStore,
  type WebhookJobData,
  webhookJobDataSchema,
} from "@cascade/shared";
import { DelayedError, type Job, UnrecoverableError, type Worker } from "bullmq";
import { errorEventLogger, PatientWorker } from "../lifecycle/patient-worker.js";
import { deliveryBody } from "./delivery-body.js";
import { DestinationSlots, destinationOf } from "./destination-slots.js";
import { sendWebhook } from "./send-webhook.js";
import { signWebhook } from "./signing.js";
import { createStoredJobReader } from "./stored-job.js";
import { resolveTenantSecrets, type TenantSecrets } from "./tenant-secrets.js";

/** The contract's per-delivery timeout. */
export const WEBHOOK_TIMEOUT_MS = 15_000;

export interface WebhookWorkerOptions {
  config: Config;
  connection: RedisClient;
  keys: Keys;
  /** The process's completion queue (its owner closes it): deliveries read their jobs from it. */
  completions: CompletionQueue;
  logger: Logger;
  clock: Clock;
  /** Deliveries in flight per process (default 100: they mostly wait on receivers). */
  concurrency?: number;
  /** Per-delivery timeout, connect to end of response (default 15 s; tests shorten it). */
  timeoutMs?: number;
  /**
   * The deliveries' lock (WORKER_LOCK_DURATION_MS, as for completion jobs; default 30 s), also
   * the interval of stalled checks: a delivery held by a crashed worker runs again within
   * lock + 2 × interval. The lock is renewed every half of it, so a delivery may take longer.
   */
  lockDurationMs?: number;
  /** Connect-time resolver of the address guard (tests inject a rebinding one). */
  resolve?: HostResolver;
  /** Tenants' signing keys, when main.ts has read them already (to fail before connecting). */
  secrets?: TenantSecrets;
  /** Counts each delivery attempt's outcome (the process's metrics). */
  onDeliveryAttempt?: (outcome: "delivered" | "retry" | "dead" | "gone") => void;
}

export interface WebhookWorker {
  readonly worker: Worker<WebhookJobData, { status: number }>;
  /**
   * Stops taking deliveries and lets those in flight finish for `graceMs`; any still running
   * then are dropped unfinished and run again (same attempt) once their lock expires.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * `retry_schedule_ms`: the wait after the n-th failed delivery is schedule[n-1], the last
 * interval repeating. BullMQ passes the number of attempts made so far, this one included.
 */
export function webhookRetryDelay(schedule: readonly number[], attemptsMade: number): number {
  return schedule[Math.min(Math.max(attemptsMade, 1), schedule.length) - 1] ?? 0;
}

const USER_AGENT = "Cascade-Webhooks/0.1";

/** A destination takes at most this share of a process's delivery slots (ADR 0007's revision). */
const DESTINATION_SHARE = 4;
/** How long a delivery waits in its slot for one of its full destination's to free up… */
const DESTINATION_WAIT_MS = 100;
/**
 * …before it goes back to the queue for this long, doubled for each time it started before
 * without making an attempt (hand-backs, waits for its job to end, a crashed worker's; at most
 * DESTINATION_BUSY_MAX_DELAY_MS), plus as much again at random: a large backlog to one receiver
 * waits in the delayed set rather than going round the line ahead of other destinations' deliveries.
 */
const DESTINATION_BUSY_DELAY_MS = 1000;
const DESTINATION_BUSY_MAX_DELAY_MS = 30_000;

/** BullMQ's default lock, and WORKER_LOCK_DURATION_MS's. */
const DEFAULT_LOCK_DURATION_MS = 30_000;

/**
 * How long a delivery whose job has not ended in Redis waits before looking again: about as long
 * as it has waited so far (50 ms at first, for the usual case of a run that is storing its
 * result right now), at most the lock duration (a run that crashed is recovered after its lock
 * expires, and the delivery should follow soon after, not as long again later).
 */
export function notEndedRetryDelay(waitedMs: number, lockDurationMs = DEFAULT_LOCK_DURATION_MS): number {
  return Math.min(Math.max(waitedMs, 50), lockDurationMs);
}

/**
 * The BullMQ worker of webhook deliveries, on its own queue so slow receivers never hold a
 * completion slot. A delivery is sent once its job has ended in Redis, with the stored job as
 * its body (see delivery-body.ts), kept from the first send on. Each attempt signs that body anew (fresh `webhook-timestamp`, same
 * `webhook-id`), POSTs it through the address guard, and records the outcome; BullMQ's attempts
 * and the schedule-based backoff drive the retries, UnrecoverableError ends a delivery at once.
 */
export function createWebhookWorker(options: WebhookWorkerOptions): WebhookWorker {
  const { config, keys, logger, clock } = options;
  const settings = config.file.webhooks;
  const secrets = options.secrets ?? resolveTenantSecrets(config);
  for (const warning of secrets.warnings) logger.warn(warning);
  const store = new WebhookDeliveryStore(
    options.connection,
    keys,
    deliveryRetentionSeconds(config.settings.JOB_RETENTION_S, settings.retry_schedule_ms),
    () => clock.now(),
  );
  const dispatcher = createGuardedDispatcher({
    allowPrivateNetworks: settings.allow_private_networks,
    ...(options.resolve ? { resolve: options.resolve } : {}),
  });
  // Alert webhooks go where the operators' config says (alerts.webhook_urls), often an internal
  // receiver: the private-network guard is for URLs tenants give. Redirects are still not followed.
  const operatorsDispatcher = settings.allow_private_networks
    ? dispatcher
    : createGuardedDispatcher({ allowPrivateNetworks: true });
  const timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const lockDurationMs = options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
  const jobs = createStoredJobReader({ connection: options.connection, keys, queue: options.completions });
  const concurrency = options.concurrency ?? 100;
  const destinations = new DestinationSlots(Math.max(1, Math.floor(concurrency / DESTINATION_SHARE)));

  const processor = async (job: Job<WebhookJobData, { status: number }>, token?: string) => {
    const parsed = webhookJobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`delivery data failed validation: ${formatZodError(parsed.error)}`);
    }
    const body = await deliveryBody(store, jobs, parsed.data);
    if (body.kind === "wait") {
      // The job has not ended in Redis (its run is storing its result, or it is being run again
      // after a stale run enqueued this delivery): look again shortly, holding no slot.
      const waitMs = notEndedRetryDelay(clock.now() - job.timestamp, lockDurationMs);
      logger.debug(
        { delivery_id: parsed.data.delivery_id, wait_ms: waitMs },
        "webhook waits for its job to end",
      );
      await job.moveToDelayed(clock.now() + waitMs, token);
      throw new DelayedError();
    }
    // The event type and body are the stored job's, not necessarily what the enqueuer saw.
    const data: WebhookJobData = { ...parsed.data, event_type: body.eventType, body: body.body };
    const log = logger.child({
      delivery_id: data.delivery_id,
      job_id: data.job_id,
      tenant: data.tenant,
      event_type: data.event_type,
    });
    if (job.attemptsMade === 0) await store.started(data);
    // A destination with its share of the slots in flight (a receiver that hangs, or one taking a
    // burst): this delivery goes back to the queue for a moment, no attempt counted, and its slot
    // goes to another destination's.
    const destination = destinationOf(data.url);
    if (!(await destinations.take(destination, DESTINATION_WAIT_MS))) {
      // Starts past the first that were not attempts: hand-backs (and waits for the job to end).
      const handedBack = Math.max(0, (job.attemptsStarted ?? 1) - job.attemptsMade - 1);
      const baseMs = Math.min(
        DESTINATION_BUSY_MAX_DELAY_MS,
        DESTINATION_BUSY_DELAY_MS * 2 ** Math.min(handedBack, 5),
      );
      const delayMs = baseMs + Math.floor(Math.random() * baseMs);
      log.debug({ wait_ms: delayMs }, "webhook waits: its destination has its share of the slots in flight");
      await job.moveToDelayed(clock.now() + delayMs, token);
      throw new DelayedError();
    }
    const timestamp = Math.floor(clock.now() / 1000);
    const tenantKeys = secrets.keys.get(data.tenant);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": USER_AGENT,
      "webhook-id": data.webhook_id,
      "webhook-timestamp": String(timestamp),
      ...(tenantKeys
        ? { "webhook-signature": signWebhook(tenantKeys, data.webhook_id, timestamp, data.body) }
        : {}),
    };
    let result: Awaited<ReturnType<typeof sendWebhook>>;
    try {
      const operators = data.tenant === OPERATORS_OWNER;
      result = await sendWebhook({
        url: data.url,
        body: data.body,
        headers,
        dispatcher: operators ? operatorsDispatcher : dispatcher,
        timeoutMs,
        allowPrivateNetworks: operators || settings.allow_private_networks,
      });
    } finally {
      destinations.release(destination);
    }
    const attempt = job.attemptsMade + 1;
    const lastAttempt = result.permanent || attempt >= (job.opts.attempts ?? 1);
    const status: DeliveryStatus = result.delivered ? "delivered" : lastAttempt ? "dead" : "pending";
    await store.attempted(data, status, { httpStatus: result.httpStatus, error: result.error });
    options.onDeliveryAttempt?.(
      status === "delivered"
        ? "delivered"
        : status === "pending"
          ? "retry"
          : result.httpStatus === 410
            ? "gone"
            : "dead",
    );
    const host = URL.canParse(data.url) ? new URL(data.url).host : "?";
    if (result.delivered) {
      log.info({ attempt, http_status: result.httpStatus, host }, "webhook delivered");
      return { status: result.httpStatus ?? 0 };
    }
    const message = result.error ?? "delivery failed";
    if (status === "dead") {
      log.warn({ attempt, http_status: result.httpStatus, host, error: message }, "webhook delivery is dead");
      throw new UnrecoverableError(message);
    }
    log.info(
      { attempt, http_status: result.httpStatus, host, error: message },
      "webhook attempt failed; will retry",
    );
    throw new Error(message);
  };

  const worker = new PatientWorker<WebhookJobData, { status: number }>(QUEUE_NAMES.webhooks, processor, {
    connection: bullConnection(options.connection),
    prefix: keys.bullPrefix,
    concurrency,
    // Renewed every half lock while the delivery runs: recovery after a crash follows the setting.
    lockDuration: lockDurationMs,
    stalledInterval: lockDurationMs,
    // A crashed worker is not the receiver's fault: recover the delivery rather than fail it.
    // A stall is a worker lost mid-job (killed, paused past its lock), not a failed attempt:
    // workers killed faster than jobs finish (test/chaos) stalled jobs out at 5. Not unbounded: a
    // job that kills its worker every time (a poison job) still ends, after ~10 lock periods.
    maxStalledCount: 10,
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string) =>
        type === WEBHOOK_BACKOFF_TYPE ? webhookRetryDelay(settings.retry_schedule_ms, attemptsMade) : 0,
    },
  });
  worker.on("error", errorEventLogger(logger, "webhook worker error"));
  worker.on("failed", (job, error) => {
    // The processor records its own dead ends; this catches the others (stalled too often, which
    // bullmq 6 reports as an UnrecoverableError). The move is compare-and-set: no double record.
    if (!job?.finishedOn) return;
    const parsed = webhookJobDataSchema.safeParse(job.data);
    if (!parsed.success) return;
    store.move(parsed.data.tenant, parsed.data.delivery_id, "pending", "dead").then(
      (moved) => {
        if (moved)
          logger.warn({ delivery_id: moved.id, err: error.message }, "webhook delivery failed; now dead");
      },
      (storeError: unknown) => logger.error({ err: storeError }, "could not record a dead webhook delivery"),
    );
  });

  return {
    worker,
    async close(graceMs = WEBHOOK_TIMEOUT_MS) {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<"grace over">((resolve) => {
        timer = setTimeout(() => resolve("grace over"), graceMs);
      });
      const closing = worker.close();
      if ((await Promise.race([closing, graceOver])) === "grace over") {
        logger.warn("shutdown grace over; leaving in-flight webhook deliveries to be run again");
        await worker.close(true);
      }
      clearTimeout(timer);
      await Promise.all([...new Set([dispatcher, operatorsDispatcher])].map((each) => each.destroy()));
    },
  };
}
