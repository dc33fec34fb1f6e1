import {
  abortableDelay,
  cancelledOutcome,
  createJobEventWriter,
  type EngineMetrics,
  failedOutcome,
  type InterruptionKind,
  invalidJobOutcome,
  JobInterruption,
  type LostCall,
  type ProviderRegistry,
  type Resilience,
  RunLostLock,
  type RunSignal,
  runChain,
  withLostCalls,
} from "@cascade/engine";
import {
  bullConnection,
  type Clock,
  type Config,
  endedForGood,
  finishedJobObject,
  formatZodError,
  isRedisRefusal,
  type JobData,
  type JobOutcome,
  type JobProgress,
  type Keys,
  type Logger,
  parseJobProgress,
  QUEUE_NAMES,
  type RedisClient,
  type RequestObserver,
  storedJobDataSchema,
  TenantSlots,
  waitingStatus,
} from "@cascade/shared";
import { DelayedError, isNotConnectionError, Job, type Worker } from "bullmq";
import { InFlightRuns } from "../lifecycle/in-flight-runs.js";
import { errorEventLogger, PatientWorker } from "../lifecycle/patient-worker.js";
import { createRunLocks, type RunLock } from "../lifecycle/run-lock.js";
import { holdsJobsAhead, SlotGate, startPrefetch } from "../lifecycle/slot-gate.js";
import { YieldLane } from "../lifecycle/yield-lane.js";
import { observeFinishedJob } from "./observe-finished.js";

/**
 * A job whose tenant is at its max_concurrency waits on the tenant's waiting set, woken when a
 * slot of the tenant frees; at the latest after this long (plus up to the jitter) it looks again
 * by itself (a wake lost with a worker that died, a slot that lapsed).
 */
const TENANT_FULL_WAIT_MS = 10_000;
/** A woken job not parked yet (its refusal still on its way): asked again after these waits. */
const TENANT_WAKE_AGAIN_MS = [250, 500, 1_000];
/** A run whose write Redis refused for now waits this long, doubling, up to MAX_REFUSAL_WAIT_MS. */
const REFUSAL_WAIT_MS = 500;
const MAX_REFUSAL_WAIT_MS = 8_000;
const TENANT_FULL_JITTER_MS = 2_000;
/**
 * Answered runs let on to their bookkeeping per turn of the event loop. Measured (bench:io): all
 * at once lost at both 500 and 2,000; 1, 2 and 4 tied at 500; 4 won at 2,000 (ADR 0026).
 */
const BOOKKEEPING_PER_TURN = 4;

/** The result BullMQ stored for `job`, as stored (JSON text); undefined unless it completed. */
async function storedOutcomeText(
  queue: Worker<JobData, JobOutcome>,
  job: Job<JobData, JobOutcome>,
): Promise<string | undefined> {
  const fresh = await Job.fromId<JobData, JobOutcome>(queue, job.id as string);
  if (!fresh || !(await fresh.isCompleted())) return undefined;
  return JSON.stringify(fresh.returnvalue);
}

/**
 * BullMQ's worker, telling `refused` of a run's result it could not store: the run's lock was
 * gone or its job no longer active (another worker runs it, or a lost reply's resend found it
 * done). Never `completed` then, so what the run spent past its last save is counted there.
 * A lost connection is not a refusal: BullMQ tries the same result again.
 */
class CompletionQueueWorker extends PatientWorker<JobData, JobOutcome> {
  refused?: (job: Job<JobData, JobOutcome>, result: JobOutcome) => void;

  protected override async handleCompleted(
    result: JobOutcome,
    job: Job<JobData, JobOutcome>,
    ...rest: [token: string, fetchNextCallback?: () => boolean, span?: never]
  ): Promise<Job<JobData, JobOutcome>> {
    try {
      return await super.handleCompleted(result, job, ...rest);
    } catch (error) {
      if (isNotConnectionError(error as Error)) this.refused?.(job, result);
      throw error;
    }
  }
}

export interface CompletionWorkerOptions {
  config: Config;
  connection: RedisClient;
  keys: Keys;
  providers: ProviderRegistry;
  logger: Logger;
  clock: Clock;
  random?: () => number;
  /** Jobs run at once (WORKER_CONCURRENCY): upstream calls in flight never exceed it. */
  concurrency: number;
  /**
   * Jobs claimed ahead of the free slots: as many as finished in this window (ms), at most a
   * quarter of `concurrency`; 0: none (default: the config's WORKER_PREFETCH_MS; ADR 0026).
   */
  prefetchMs?: number;
  lockDurationMs: number;
  /** Shared breakers, buckets and budgets (omit to run unlimited, e.g. in benchmarks). */
  resilience?: Resilience;
  /** Called with the terminal outcome before BullMQ records it (queues the job's webhook). */
  onFinished?: (job: Job<JobData, JobOutcome>, data: JobData, outcome: JobOutcome) => Promise<void>;
  /** Told of every job that ended here (metrics, usage counts, alerts). */
  observer?: RequestObserver;
  /**
   * Claims the count of a job BullMQ failed for good (true: count it here); without it, counted
   * here always. The failed-jobs sweep counts the ones no worker claimed (ADR 0024).
   */
  claimFailureCount?: (jobId: string) => Promise<boolean>;
  /** Where the engine counts attempts and first tokens (the process's metrics). */
  metrics?: EngineMetrics;
}

export interface CompletionWorker {
  readonly worker: Worker<JobData, JobOutcome>;
  /** Aborts a running job held by this process; returns false when it holds no such job. */
  interrupt(jobId: string, kind: InterruptionKind): boolean;
  /** Stops taking jobs, lets running ones finish for `graceMs`, then hands the rest back. */
  close(graceMs: number): Promise<void>;
}

/**
 * The BullMQ worker for completion jobs: validates job data, runs the chain, and either returns
 * the terminal outcome (stored as the job's return value) or parks the job in the delayed set,
 * its progress saved, when it must wait longer than is worth holding a slot for.
 */
export function createCompletionWorker(options: CompletionWorkerOptions): CompletionWorker {
  const { config, keys, logger, clock } = options;
  const random = options.random ?? Math.random;
  const runs = new InFlightRuns(clock);
  const runLocks = createRunLocks(options.connection, keys);
  // max_concurrency: a slot lapses after two lock durations unless renewed (a dead worker's).
  const tenantSlots = new TenantSlots(options.connection, keys, 2 * options.lockDurationMs, (error) =>
    logger.warn({ err: error }, "could not renew a tenant's running slot"),
  );
  /**
   * What the calls earlier runs' processes left in flight came to, where above 0: in the job's
   * cost, but counted by those processes' recovery (or their own stray charge), not here.
   */
  const lostCosts = new WeakMap<Job<JobData, JobOutcome>, number>();
  const observe = (
    job: Job<JobData, JobOutcome>,
    data: JobData,
    outcome: JobOutcome,
    lostUsd = lostCosts.get(job) ?? 0,
  ) => observeFinishedJob(options.observer, job, data, outcome, clock.now(), lostUsd);
  /**
   * The calls of a job whose earlier run stalled (its worker killed, or stopped past its lock)
   * that that run left in flight and `progress` does not hold yet. Not found (Redis refused the
   * read): the job goes on without them, as before the journal named its calls.
   */
  const lostCallsOf = async (jobId: string, progress: JobProgress | undefined): Promise<LostCall[]> => {
    if (!options.resilience) return [];
    try {
      return await options.resilience.lostCalls(jobId, progress);
    } catch (error) {
      logger.warn(
        { job_id: jobId, err: (error as Error).message },
        "could not look for calls an earlier run of this job left in flight",
      );
      return [];
    }
  };
  /** Runs that ended with a result, until BullMQ has stored it (then they are counted). */
  const endedRuns = new WeakMap<Job<JobData, JobOutcome>, JobData>();
  /** The cost saved in such a run's job (at its start, or its last save) when above 0. */
  const savedCosts = new WeakMap<Job<JobData, JobOutcome>, number>();
  /** What a run that could not end its job spent past its last save: only this run knows it. */
  const strayCharge = (data: JobData, costUsd: number, model: string | undefined) => {
    if (!(costUsd > 0)) return;
    options.observer?.charged?.({
      tenant: data.tenant,
      route: data.route,
      firstModel: data.chain[0]?.model ?? "",
      ...(model !== undefined ? { model } : {}),
      costUsd,
      atMs: clock.now(),
    });
  };

  const slots = new SlotGate(options.concurrency);
  const prefetchMs = options.prefetchMs ?? config.settings.WORKER_PREFETCH_MS;
  // After its answer a run's bookkeeping (log, metrics, result, BullMQ's finish) waits here, four
  // runs per turn with the sockets read between them, while held jobs start on the freed slots
  // (ADR 0026, second revision). A worker that holds no job ahead has no successor to start: its
  // next job comes from the fetch its finish makes, so its bookkeeping goes on at once.
  const bookkeeping = holdsJobsAhead(options.concurrency, prefetchMs)
    ? new YieldLane(BOOKKEEPING_PER_TURN)
    : undefined;

  // BullMQ runs this for up to `concurrency` plus the prefetch allowance jobs; past the slots a job
  // is held for one, claimed and in memory, and starts as soon as a run ends. Its run is registered
  // from the claim, so a cancel or a lost lock reaches it while it is held.
  const processor = async (job: Job<JobData, JobOutcome>, token?: string): Promise<JobOutcome> => {
    const jobId = job.id as string;
    const run = runs.start(jobId);
    try {
      // Validated before it waits for a slot: a freed slot's next job goes straight to its call.
      const parsed = storedJobDataSchema.safeParse(job.data);
      if (!parsed.success) {
        logger.error({ job_id: jobId, issues: formatZodError(parsed.error) }, "job data failed validation");
        return invalidJobOutcome(formatZodError(parsed.error), clock.now());
      }
      const data = parsed.data;
      const entered = slots.enter(run.signal);
      const admission = entered === "admitted" ? entered : await entered;
      if (admission === "handed_back") {
        // The worker is closing, or its slots stopped turning over: back to the queue untouched
        // (no attempt used), for any worker to run.
        await job.moveToDelayed(clock.now(), token);
        throw new DelayedError();
      }
      if (admission === "interrupted") {
        // Cancelled (or its lock lost) while held: the run ends as interrupted, calling nothing
        // (its signal is aborted), without a slot.
        return await runJob(job, data, token, run);
      }
      // The slot is freed once: when the call has answered (the next held job starts its call
      // while this one records its result, in the bookkeeping lane), or when the run ends.
      let holding = true;
      const free = (ended: boolean) => {
        if (!holding) return;
        holding = false;
        slots.leave(ended);
      };
      const answered = () => {
        free(true);
        return bookkeeping?.turn();
      };
      // A job put off to the delayed set (a full tenant, a wait for a limit) is not a completion.
      let ended = false;
      let refusals = 0;
      let refusedSince: number | undefined;
      try {
        while (true) {
          try {
            const outcome = await runJob(job, data, token, run, answered);
            ended = true;
            return outcome;
          } catch (error) {
            // Redis refused a write for now (out of memory at maxmemory, a failover) before the
            // call had answered: not the job's failure, which would spend one of its few attempts
            // in a second each. The run waits and starts again from its last save, holding its
            // slot, while that save knows every call it made (else starting again would forget a
            // billed call, and could make it again) and for at most half a lock duration from the
            // first refusal (BullMQ cannot extend the lock while Redis refuses writes: past it,
            // another worker may take the job). Else the job fails the attempt, as before.
            refusedSince ??= clock.now();
            const retryUntil = refusedSince + options.lockDurationMs / 2 - REFUSAL_WAIT_MS;
            const retry =
              holding &&
              isRedisRefusal(error) &&
              !run.signal.aborted &&
              run.callsSinceSave === 0 &&
              clock.now() < retryUntil;
            if (retry) {
              refusals += 1;
              if (refusals === 1)
                logger.warn(
                  { job_id: jobId, err: (error as Error).message },
                  "Redis refused a write of this run for now; it starts again once Redis takes writes",
                );
              const backoff = Math.min(REFUSAL_WAIT_MS * 2 ** (refusals - 1), MAX_REFUSAL_WAIT_MS);
              await abortableDelay(Math.min(backoff, retryUntil - clock.now()), run.signal).catch(() => {});
              continue;
            }
            throw error;
          }
        }
      } catch (error) {
        ended = !(error instanceof DelayedError);
        throw error;
      } finally {
        free(ended);
      }
    } finally {
      runs.end(jobId, run);
    }
  };

  /**
   * Wakes a job that waits for its tenant's slot (handed back by a release): out of the delayed
   * set into the line, at its priority. One whose refusal has not parked it yet is asked again
   * a little later, for up to ~2 s; one gone since is let be.
   */
  const wakeWaiting = async (waitingId: string | undefined, tries = 0): Promise<void> => {
    if (waitingId === undefined) return;
    try {
      await worker.backend.promote(waitingId);
    } catch {
      const wait = TENANT_WAKE_AGAIN_MS[tries];
      if (wait !== undefined) setTimeout(() => void wakeWaiting(waitingId, tries + 1), wait).unref();
    }
  };
  const runJob = async (
    job: Job<JobData, JobOutcome>,
    data: JobData,
    token: string | undefined,
    run: RunSignal,
    answered?: () => Promise<void> | undefined,
  ): Promise<JobOutcome> => {
    const jobId = job.id as string;
    // Only tenants with max_concurrency pay for the slot's round trips; a run interrupted while
    // held (cancelled, lock lost) calls nothing, so it takes no tenant slot either.
    const maxConcurrency = run.signal.aborted
      ? undefined
      : config.file.tenants?.[data.tenant]?.max_concurrency;
    const slot =
      maxConcurrency === undefined
        ? undefined
        : // One slot per run (job id and lock token): a run that lost its lock and still winds
          // down is counted until it ends, apart from the run that took the job over.
          await tenantSlots.acquire(data.tenant, `${jobId}:${token ?? ""}`, maxConcurrency, {
            id: jobId,
            order: job.priority ?? 0,
          });
    if (maxConcurrency !== undefined && !slot) {
      // The tenant runs as many jobs as it may: back to the delayed set, progress kept, until a
      // slot of the tenant frees (its release wakes the first waiting job) or, at the latest,
      // TENANT_FULL_WAIT_MS. Its BullMQ priority (its fair-share tag) keeps its place in line.
      await job.moveToDelayed(
        clock.now() + TENANT_FULL_WAIT_MS + Math.floor(random() * TENANT_FULL_JITTER_MS),
        token,
      );
      throw new DelayedError();
    }
    const releaseSlot = () =>
      slot
        ?.release()
        .then(wakeWaiting)
        .catch((error) =>
          logger.warn({ job_id: jobId, err: error }, "could not release a tenant's running slot"),
        );
    // What the job's stored progress has been charged (at its start, then at each save): the run
    // that ends the job counts it; a run that cannot end it counts only what it spent past it.
    let savedCost = 0;
    // What the run spent in all once its chain finished, and on which model (its outcome's).
    let ended: { costUsd: number; model: string | undefined } | undefined;
    // What calls earlier runs left in flight came to (in the job's progress, or found by this run).
    let lostUsd = 0;
    try {
      // Progress and events are written only while this run holds the job's lock. A write that
      // finds it gone (the run stalled past it and another worker may run the job now) stops the
      // run here; BullMQ will refuse its result too, so it changes nothing. Made at the first
      // write: most jobs write neither (progress is saved only when a hop fails).
      let lock: RunLock | undefined;
      const lockOf = (): RunLock => {
        lock ??= runLocks.forRun(jobId, token ?? "", () => {
          logger.warn(
            { job_id: jobId },
            "this run no longer holds the job's lock; stopping it, writing nothing",
          );
          runs.interruptRun(run, "lock_lost");
        });
        return lock;
      };
      const progress = parseJobProgress(job.progress);
      savedCost = progress?.cost_usd ?? 0;
      // Not the job's first run: it waited for a limit, or its earlier run died or lost the lock.
      const resumed = progress !== undefined || (job.attemptsStarted ?? 1) > 1;
      // Only streaming jobs keep an event stream: other jobs' events are derived from their state.
      const events = data.request.stream
        ? createJobEventWriter({
            lock: lockOf(),
            jobId,
            retentionSeconds: config.settings.EVENTS_RETENTION_S,
            deadlineAt: data.deadline_at,
            resumed,
            now: () => clock.now(),
            logger,
          })
        : undefined;
      // A job starting again (after waiting for a limit, a crash, or being handed back) may have
      // been cancelled while no worker held it. First runs skip this read: a cancel of a job shown
      // running reaches its run, held for a slot or not (registered from the claim).
      const cancelled = resumed && (await options.connection.exists(keys.cancelRequest(jobId))) > 0;
      // A run of the job stalled: the calls it left in flight are the job's attempts and cost too,
      // charged by their process's recovery (or by it, if it was only paused), so counted as saved.
      // A job cancelled meanwhile ends with them as well.
      const lostCalls = resumed && job.stalledCounter > 0 ? await lostCallsOf(jobId, progress) : [];
      lostUsd = lostCalls.reduce((total, call) => total + call.costUsd, progress?.lost_usd ?? 0);
      savedCost += lostUsd - (progress?.lost_usd ?? 0);
      const result = cancelled
        ? ({
            kind: "finished",
            outcome: cancelledOutcome(
              withLostCalls(progress, lostCalls, { jobId, events, config, clock, logger }),
              clock.now(),
            ),
          } as const)
        : await runChain({
            jobId,
            data,
            config,
            providers: options.providers,
            clock,
            logger,
            random,
            // Calls share the run's signal; a call's timeout swaps it for a fresh one.
            get signal() {
              return run.signal;
            },
            runSignal: run,
            resilience: options.resilience,
            ...(options.metrics ? { metrics: options.metrics } : {}),
            // The answer is in: the tenant's running slot goes first (sent before the next
            // job's take, on the same connection), then the worker's.
            ...(answered
              ? {
                  answered: () => {
                    void releaseSlot();
                    return answered();
                  },
                }
              : {}),
            events,
            progress,
            // Parsed from the job for this run: the chain takes it over without a copy.
            progressOwned: true,
            ...(lostCalls.length > 0 ? { lostCalls } : {}),
            saveProgress: async (progress) => {
              if (!(await lockOf().saveProgress(progress))) throw new JobInterruption("lock_lost");
              savedCost = progress.cost_usd;
              run.saved();
              // BullMQ's copy too (the save is Cascade's script, not updateProgress): the
              // `failed` handler counts a job failed for good from it, and the chain goes on
              // changing `progress`, past what was saved.
              job.progress = structuredClone(progress);
            },
          });
      if (result.kind === "finished") {
        ended = { costUsd: result.outcome.cost_usd, model: result.outcome.model };
        await events?.done(finishedJobObject(jobId, data, result.outcome));
        // The `done` event found the lock gone: BullMQ would refuse this result anyway.
        if (lock?.lost) throw new JobInterruption("lock_lost");
        await options.onFinished?.(job, data, result.outcome);
        // Counted once BullMQ has stored the result (the `completed` handler below): a run that
        // lost its lock, whose result BullMQ refuses, is not a request that ended (the run that
        // took the job over counts it). An enqueue that gives up fails the job, and the failed
        // handler counts it then.
        if (options.observer) {
          endedRuns.set(job, data);
          if (savedCost > 0) savedCosts.set(job, savedCost);
          if (lostUsd > 0) lostCosts.set(job, lostUsd);
        }
        return result.outcome;
      }
      // The runner saved the progress to resume from; the job waits in the delayed set.
      // Queued again while it waits, as GET says, if it has made no attempt yet (else it is
      // running, as its stream already says).
      if (waitingStatus(result.progress) === "queued") await events?.queued?.();
      await job.moveToDelayed(result.until, token);
      throw new DelayedError();
    } catch (error) {
      // This run cannot end the job (its lock is gone, or the webhook's enqueue or the `done`
      // event failed after the answer, and BullMQ runs the job again from its last save): what
      // it spent past that save is counted here, or nowhere.
      if (error instanceof RunLostLock) strayCharge(data, error.costUsd - savedCost, error.model);
      else if (ended) strayCharge(data, ended.costUsd - savedCost, ended.model);
      throw error;
    } finally {
      await releaseSlot();
    }
  };

  const worker = new CompletionQueueWorker(QUEUE_NAMES.completions, processor, {
    connection: bullConnection(options.connection),
    prefix: keys.bullPrefix,
    concurrency: options.concurrency,
    lockDuration: options.lockDurationMs,
    stalledInterval: options.lockDurationMs,
    // A crashed worker is not the job's fault: let it be recovered several times before failing.
    // A stall is a worker lost mid-job (killed, paused past its lock), not a failed attempt:
    // workers killed faster than jobs finish (test/chaos) stalled jobs out at 5. Not unbounded: a
    // job that kills its worker every time (a poison job) still ends, after ~10 lock periods.
    maxStalledCount: 10,
    removeOnComplete: { age: config.settings.JOB_RETENTION_S },
    removeOnFail: { age: config.settings.JOB_RETENTION_S },
  });
  const stopPrefetch = startPrefetch(
    slots,
    prefetchMs,
    (concurrency) => {
      worker.concurrency = concurrency;
    },
    (jobs) =>
      logger.info(
        { jobs },
        "no run ended for a while: the jobs held ahead of the slots went back to the queue",
      ),
  );
  worker.on("error", errorEventLogger(logger, "worker error"));
  worker.on("lockRenewalFailed", (jobIds) => {
    for (const jobId of jobIds) {
      logger.warn(
        { job_id: jobId },
        "lost the job's lock; aborting its upstream call (another worker will run it)",
      );
      runs.interrupt(jobId, "lock_lost");
    }
  });
  worker.on("completed", (job, outcome) => {
    const data = endedRuns.get(job);
    if (data === undefined) return;
    endedRuns.delete(job);
    observe(job, data, outcome);
  });
  worker.refused = (job, outcome) => {
    const data = endedRuns.get(job);
    if (data === undefined) return;
    endedRuns.delete(job);
    const unsaved = outcome.cost_usd - (savedCosts.get(job) ?? 0);
    // The job may have ended with this very result, its reply lost (a resend then finds it done):
    // then it is this run's request, counted whole here since `completed` never comes. Else
    // another run ends it, and only what this run spent past the last save is this run's to count.
    void storedOutcomeText(worker, job).then(
      (stored) => {
        if (stored === JSON.stringify(outcome)) observe(job, data, outcome);
        else strayCharge(data, unsaved, outcome.model);
      },
      () => strayCharge(data, unsaved, outcome.model),
    );
  };
  worker.on("failed", (job, error) => {
    if (!job) return;
    logger.error({ job_id: job.id, err: error }, "job failed unexpectedly");
    // BullMQ gave up on it (no attempts left): it ended failed, and its webhook must say so.
    // (Also when BullMQ failed it for stalling too often, which does not count as an attempt.)
    if (endedForGood(job) && (options.onFinished || options.observer)) {
      const data = storedJobDataSchema.safeParse(job.data);
      if (!data.success) return;
      const progress = parseJobProgress(job.progress);
      const outcome = failedOutcome(
        progress,
        { type: "internal_error", message: error.message.slice(0, 500) },
        clock.now(),
      );
      // Counted once, here or by the failed-jobs sweep; a claim that fails leaves it to the sweep.
      (options.claimFailureCount?.(job.id as string) ?? Promise.resolve(true)).then(
        (mine) => mine && observe(job, data.data, outcome, progress?.lost_usd ?? 0),
        (claimError: unknown) =>
          logger.warn({ job_id: job.id, err: claimError }, "failed job not counted here; the sweep will"),
      );
      void options
        .onFinished?.(job, data.data, outcome)
        ?.catch((notifyError) =>
          logger.error({ job_id: job.id, err: notifyError }, "could not notify a failed job"),
        );
    }
  });

  return {
    worker,
    interrupt: (jobId, kind) => runs.interrupt(jobId, kind),
    async close(graceMs) {
      stopPrefetch();
      const closed = worker.close();
      // Jobs held ahead go back now; the running ones get the grace.
      slots.close();
      const timer = setTimeout(() => {
        if (runs.size)
          logger.warn({ jobs: runs.size }, "shutdown grace over; handing running jobs back to the queue");
        runs.interruptAll("shutdown");
      }, graceMs);
      try {
        await closed;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
