import type { Attempt, Clock, Config, JobData, JobOutcome, JobProgress, Logger } from "@cascade/shared";
import type { JobEventSink } from "../events/job-event-writer.js";
import type { ProviderRegistry } from "../providers/registry.js";
import type { LostCall, Resilience } from "../resilience/resilience.js";
import type { StreamContinuation } from "./continuation.js";
import type { RunSignal } from "./run-signal.js";

/**
 * What the engine reports to the process's metrics. An interface here, so the engine stays free of
 * any metrics library: shared/metrics implements it (prom-client).
 */
export interface EngineMetrics {
  /** Every recorded attempt (a call's success or error, or a skip). */
  attempt(attempt: Attempt): void;
  /** The first streamed token of a call arrived `seconds` after it was dispatched. */
  firstToken(provider: string, model: string, seconds: number): void;
  /** A hop found no capacity in its buckets (or a cooldown) and waits for it, in process or deferred. */
  limitWait?(provider: string, model: string): void;
}

/** Everything one run of a job through its chain reads: the front door (worker, API) builds it. */
export interface ChainContext {
  jobId: string;
  data: JobData;
  config: Config;
  providers: ProviderRegistry;
  clock: Clock;
  logger: Logger;
  random: () => number;
  /** Aborted with a JobInterruption on cancellation, lock loss or shutdown. */
  readonly signal: AbortSignal;
  /**
   * The run's shared signal (a worker's runs, gateway requests): calls are made with it rather
   * than with a controller of their own, and a call's timeout swaps it for a fresh one, so
   * `signal` must be a getter reading `runSignal.signal`. Absent, each call makes its own
   * controller following `signal`.
   */
  runSignal?: RunSignal;
  /** Where a previous run of this job stopped, if it made attempts. */
  progress?: JobProgress;
  /**
   * `progress` was made for this run alone (the worker parsed it from the job just now): the run
   * changes it in place instead of copying it first.
   */
  progressOwned?: boolean;
  /**
   * Calls of earlier runs their processes left in flight, not yet in `progress` (the worker found
   * them for a job whose run stalled): recorded first, as attempts charged at their estimates.
   */
  lostCalls?: readonly LostCall[];
  /** Persists progress (BullMQ job progress) so a re-run resumes here. */
  saveProgress(progress: JobProgress): Promise<unknown>;
  /** Shared breakers, buckets and budgets; absent, hops are never limited (benchmarks, tests). */
  resilience?: Resilience;
  /** Live events of a streaming job (`request.stream: true`); absent for other jobs. */
  events?: JobEventSink;
  /**
   * Waits for limits and retry backoffs up to this long are slept in process; longer ones hand
   * the job back to the delayed set. Default 1 s (a worker slot is worth more than a short
   * sleep); the gateway has no queue to wait in and passes Infinity (its deadline bounds waits).
   */
  maxInlineWaitMs?: number;
  /** A streaming caller who sees tokens as they come (the gateway): how a shown stream fails. */
  continuation?: StreamContinuation;
  /** Where attempts and first tokens are counted; absent, nothing is (benchmarks, tests). */
  metrics?: EngineMetrics;
  /**
   * Called once a call has answered (the run's last: a success ends it) and its settlement is
   * queued, before the run records it. The worker frees the call's slot here for the next job; one
   * that holds jobs ahead then waits its turn in its bookkeeping lane (a few runs per event-loop
   * turn, the sockets read between them), so new answers start their successors before the
   * backlog's bookkeeping (ADR 0026's revisions). Must not throw.
   */
  answered?: () => Promise<void> | undefined;
}

/**
 * How a run ends: with the job's terminal outcome, or with a time to resume at (a wait too long to
 * hold a worker slot for, or a shutdown) and the progress, already saved, to resume from.
 */
export type ChainResult =
  | {
      kind: "finished";
      outcome: JobOutcome;
      /**
       * A run failed for its request's own fault (`bad_request`, or `content_filter` under
       * `on_content_filter: fail`): the request field the provider named (OpenAI's `error.param`).
       * Not part of the outcome, whose error is the contract's job error (`type`, `message`): the
       * gateway's 400 carries it, as OpenAI's does.
       */
      param?: string;
    }
  | { kind: "deferred"; until: number; progress: JobProgress };
