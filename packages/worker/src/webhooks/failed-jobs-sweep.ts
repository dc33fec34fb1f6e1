import { failedOutcome } from "@cascade/engine";
import {
  buildWebhookJob,
  type Clock,
  type CompletionQueue,
  type Config,
  enqueueWebhook,
  finishedJobObject,
  type JobData,
  type JobOutcome,
  type Keys,
  type Logger,
  parseJobProgress,
  type RedisClient,
  type RequestObserver,
  storedJobDataSchema,
  type WebhookQueue,
} from "@cascade/shared";
import { Job } from "bullmq";
import { observeFinishedJob } from "../completion/observe-finished.js";
import { ADVANCE_CURSOR_LUA, FAILED_PAGE_LUA } from "./failed-jobs-sweep.lua.js";

type PageCommand = (...args: Array<string | number>) => Promise<string[]>;
type AdvanceCommand = (...args: Array<string | number>) => Promise<number>;

const COMMANDS = {
  cascadeFailedPage: { lua: FAILED_PAGE_LUA, keys: 2 },
  cascadeAdvanceFailedCursor: { lua: ADVANCE_CURSOR_LUA, keys: 1 },
} as const;

/** Failures looked at per script call, and calls per pass: at most 1,000 jobs per interval. */
const PAGE_SIZE = 100;
const PAGES_PER_PASS = 10;
/** Passes in a row one failure may stop the sweep at (with Redis up) before it is passed over. */
const STUCK_PASSES = 5;

export interface FailedJobsSweepOptions {
  config: Config;
  connection: RedisClient;
  keys: Keys;
  /** The process's completions queue (read only) and webhook queue (its owner closes both). */
  completions: CompletionQueue;
  webhooks: WebhookQueue;
  logger: Logger;
  clock: Clock;
  /** Told of each failed job no worker counted (the process's usage counts, metrics, alerts). */
  observer?: RequestObserver;
  /** Between passes (main.ts: the lock duration). One process of all sweeps per interval. */
  intervalMs: number;
  /**
   * Failures younger than this, by Redis's clock, wait for a later pass (main.ts: two lock
   * durations). Scores are the failing worker's clock: a worker whose clock is further behind
   * Redis's than this could write a failure the cursor has already passed.
   */
  settleMs: number;
  /** The lease holder's token (default: random). */
  token?: string;
}

/** What one pass did. */
export interface FailedJobsPass {
  /** Failed jobs looked at. */
  seen: number;
  /**
   * job.failed webhooks found missing and added (a pass overlapping this one may have added the
   * same: BullMQ keeps one job per delivery id, so this may count one delivery twice).
   */
  queued: number;
  /** Failed jobs counted that no worker had counted. */
  counted: number;
}

export interface FailedJobsSweep {
  /**
   * Claims the counting of a failed job (SET NX, expiring with the job): true for the one caller
   * that counts it, the worker that failed it or else the sweep. Rejects when Redis does not
   * answer; the caller then leaves the count to the sweep.
   */
  claimCount(jobId: string): Promise<boolean>;
  /** One pass, if this process holds this interval's lease; undefined when another one does. */
  pass(): Promise<FailedJobsPass | undefined>;
  start(): void;
  /** Stops the passes; resolves once a pass under way has ended. */
  stop(): Promise<void>;
}

/**
 * The failed-jobs sweep: the job.failed webhook and the usage count of every job BullMQ failed for
 * good, for the jobs no worker told. BullMQ writes a failure (attempts used up, or stalled more
 * than maxStalledCount) in the failing worker's moveToFailed, and only that process's `failed`
 * event queues the webhook and counts the job: a worker killed in between, or an enqueue that
 * gave up, left the job failed with no webhook ever. Each pass walks the completions queue's
 * failed set from a cursor kept in Redis, oldest first, settled failures only, a bounded number
 * per pass; for each job it queues the delivery unless the delivery's BullMQ job or its record
 * exists (a delivered webhook whose job was removed keeps its record: it is not sent again), and
 * counts the job unless someone claimed its count. Every step is idempotent (the delivery id
 * derives from the job id; the count is a SET NX), and the cursor only moves forward, so
 * overlapping passes of several processes queue and count nothing twice. ADR 0024.
 */
export function createFailedJobsSweep(options: FailedJobsSweepOptions): FailedJobsSweep {
  const { config, connection, keys, completions, webhooks, logger, clock, observer } = options;
  const table = connection as unknown as Record<string, PageCommand & AdvanceCommand>;
  for (const [name, spec] of Object.entries(COMMANDS)) {
    if (!(name in connection)) connection.defineCommand(name, { numberOfKeys: spec.keys, lua: spec.lua });
  }
  const pageCommand = (table.cascadeFailedPage as PageCommand).bind(connection);
  const advanceCommand = (table.cascadeAdvanceFailedCursor as AdvanceCommand).bind(connection);
  const failedKey = completions.toKey("failed");
  const retentionS = config.settings.JOB_RETENTION_S;
  const trustedForMs = Math.max(retentionS * 1000 - options.settleMs, (retentionS * 1000) / 2);
  const token = options.token ?? `${process.pid}-${Math.random().toString(36).slice(2)}`;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  /** The failure the last passes stopped at, and how many passes in a row did. */
  let stuck: { key: string; tries: number } | undefined;

  const claimCount = async (jobId: string) =>
    (await connection.set(keys.failedJobCounted(jobId), "1", "EX", retentionS, "NX")) === "OK";

  /** Tells one failed job's webhook and count, unless someone has; throws on a Redis error. */
  const reconcile = async (jobId: string, score: number): Promise<{ queued: boolean; counted: boolean }> => {
    const [job, stillFailed] = await Promise.all([
      Job.fromId<JobData, JobOutcome>(completions, jobId),
      // Retried since (by an operator): it is running or queued again, not failed.
      connection.zscore(failedKey, jobId),
    ]);
    const parsed = storedJobDataSchema.safeParse(job?.data);
    if (!job || stillFailed === null || !parsed.success) return { queued: false, counted: false };
    const data = parsed.data;
    const finishedAt = job.finishedOn ?? score;
    const progress = parseJobProgress(job.progress);
    const outcome = failedOutcome(
      progress,
      { type: "internal_error", message: (job.failedReason ?? "").slice(0, 500) },
      finishedAt,
    );
    // A delivery's record and a count's claim live at least the retention from the job's end:
    // past that (less the clock skew the settle time allows for) a webhook delivered or a count
    // made may have left no trace. Never guess.
    if (clock.now() - finishedAt >= trustedForMs) return { queued: false, counted: false };
    let queued = false;
    const delivery = buildWebhookJob(data.tenant, finishedJobObject(jobId, data, outcome), finishedAt);
    if (delivery) {
      const [inQueue, recorded] = await Promise.all([
        connection.exists(webhooks.toKey(delivery.delivery_id)),
        connection.exists(keys.webhookDelivery(delivery.delivery_id)),
      ]);
      if (inQueue === 0 && recorded === 0) {
        const added = await enqueueWebhook(
          webhooks,
          config,
          data.tenant,
          finishedJobObject(jobId, data, outcome),
          clock.now(),
        );
        queued = added !== undefined;
        if (queued)
          logger.warn(
            { job_id: jobId, tenant: data.tenant, delivery_id: delivery.delivery_id },
            "queued the job.failed webhook of a failed job no worker had queued (its worker died, or its enqueue failed)",
          );
      }
    }
    let counted = false;
    if (observer && (await claimCount(jobId))) {
      observeFinishedJob(observer, job, data, outcome, finishedAt, progress?.lost_usd);
      counted = true;
    }
    return { queued, counted };
  };

  const pass = async (): Promise<FailedJobsPass | undefined> => {
    const leased = await connection.set(
      keys.failedSweepLease,
      token,
      "PX",
      Math.max(options.intervalMs - 500, 500),
      "NX",
    );
    if (leased !== "OK") return undefined;
    const result: FailedJobsPass = { seen: 0, queued: 0, counted: 0 };
    for (let page = 0; page < PAGES_PER_PASS; page += 1) {
      const flat = await pageCommand(failedKey, keys.failedSweepCursor, options.settleMs, PAGE_SIZE);
      const entries: Array<{ jobId: string; score: string }> = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        entries.push({ jobId: flat[index] as string, score: flat[index + 1] as string });
      }
      if (entries.length === 0) break;
      const outcomes = await Promise.allSettled(
        entries.map((entry) => reconcile(entry.jobId, Number(entry.score))),
      );
      let failedAt = outcomes.findIndex((outcome) => outcome.status === "rejected");
      // One failure that fails pass after pass (not Redis being away or full, which passes) must not hold
      // up every failure after it: after STUCK_PASSES tries it is logged and passed over.
      const first = failedAt === -1 ? undefined : entries[failedAt];
      // Only a failure of this job's own: another of the page was told, so Redis answers writes.
      const othersTold = outcomes.some((outcome) => outcome.status === "fulfilled");
      if (first && othersTold && connection.status === "ready") {
        const key = `${first.score}:${first.jobId}`;
        stuck = stuck?.key === key ? { key, tries: stuck.tries + 1 } : { key, tries: 1 };
        if (stuck.tries >= STUCK_PASSES) {
          logger.error(
            { job_id: first.jobId, err: (outcomes[failedAt] as PromiseRejectedResult).reason },
            `failed-jobs sweep: could not tell this failed job in ${STUCK_PASSES} passes; passing over it`,
          );
          stuck = undefined;
          const next = outcomes.findIndex(
            (outcome, index) => index > failedAt && outcome.status === "rejected",
          );
          failedAt = next;
        }
      }
      const done = failedAt === -1 ? entries.length : failedAt;
      for (const outcome of outcomes.slice(0, done)) {
        if (outcome.status !== "fulfilled") continue;
        result.seen += 1;
        if (outcome.value.queued) result.queued += 1;
        if (outcome.value.counted) result.counted += 1;
      }
      const last = entries[done - 1];
      // Jobs after a failed one may have been told already: the next pass finds them told.
      if (last) await advanceCommand(keys.failedSweepCursor, last.score, last.jobId);
      if (failedAt !== -1) {
        throw (outcomes[failedAt] as PromiseRejectedResult).reason;
      }
      if (entries.length < PAGE_SIZE) break;
    }
    return result;
  };

  return {
    claimCount,
    pass,
    start() {
      if (timer) return;
      timer = setInterval(() => {
        if (running) return;
        running = pass()
          .then((result) => {
            if (result && (result.queued > 0 || result.counted > 0))
              logger.info({ ...result }, "failed-jobs sweep told failures no worker had told");
          })
          .catch((error) => logger.warn({ err: error }, "failed-jobs sweep failed; the next pass resumes"))
          .finally(() => {
            running = undefined;
          });
      }, options.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
