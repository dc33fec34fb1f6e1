import {
  type Attempt,
  type ChatRequest,
  type Clock,
  type Config,
  costUsd,
  type JobData,
  type JobOutcome,
  type JobProgress,
  type Logger,
  type ModelConfig,
  unixSeconds,
} from "@cascade/shared";
import type { JobEventSink } from "../events/job-event-writer.js";
import { ProviderError } from "../providers/provider-error.js";
import type { ProviderRegistry } from "../providers/registry.js";
import { abortableDelay } from "../providers/simulated.js";
import type { Completion, StreamSink } from "../providers/types.js";
import type { Resilience } from "../resilience/resilience.js";
import { admitHop } from "./admission.js";
import { backoffDelayMs } from "./backoff.js";
import { chargeUnfinishedCall, streamedCharactersOf } from "./call-charge.js";
import { toChatCompletion } from "./chat-completion.js";
import { interruptionOf, JobInterruption } from "./interruption.js";
import { estimateRequest, needsImageStrip, precheckHop, stripImages } from "./prechecks.js";

export const DEFAULT_HOP_TIMEOUT_MS = 60_000;
/** Waits up to this long sleep in the worker; longer ones hand the job back to the delayed set. */
export const INLINE_WAIT_LIMIT_MS = 1_000;

export interface ChainContext {
  jobId: string;
  data: JobData;
  config: Config;
  providers: ProviderRegistry;
  clock: Clock;
  logger: Logger;
  random: () => number;
  /** Aborted with a JobInterruption on cancellation, lock loss or shutdown. */
  signal: AbortSignal;
  /** Where a previous run of this job stopped, if it made attempts. */
  progress?: JobProgress;
  /** Persists progress (BullMQ job progress) so a re-run resumes here. */
  saveProgress(progress: JobProgress): Promise<unknown>;
  /** Shared breakers, buckets and budgets; absent, hops are never limited (benchmarks, tests). */
  resilience?: Resilience;
  /** Live events of a streaming job (`request.stream: true`); absent for other jobs. */
  events?: JobEventSink;
}

export type ChainResult =
  | { kind: "finished"; outcome: JobOutcome }
  | { kind: "deferred"; until: number; progress: JobProgress };

type HopDecision =
  | { action: "retry"; delayMs: number }
  | { action: "next" }
  | { action: "fail"; type: string };

function decide(
  context: ChainContext,
  error: ProviderError,
  retriesLeft: number,
  retryNumber: number,
): HopDecision {
  const { policy, deadline_at: deadline } = context.data;
  if (error.reason === "bad_request" && !error.providerSpecific && policy.on_bad_request === "fail") {
    return { action: "fail", type: "bad_request" };
  }
  if (error.reason === "content_filter" && policy.on_content_filter === "fail") {
    return { action: "fail", type: "content_filter" };
  }
  if (!error.isRetryable || retriesLeft <= 0) return { action: "next" };
  const delayMs = backoffDelayMs(retryNumber, error.retryAfterMs, context.random);
  if (error.reason === "rate_limited" && context.clock.now() + delayMs > deadline) return { action: "next" };
  return { action: "retry", delayMs };
}

/**
 * Runs one upstream call of a hop, bounded by its timeout and the job's signal. One controller
 * and one timer per call, both released when it ends (AbortSignal.any + AbortSignal.timeout cost
 * ~5 KB and a 60 s timer per hop).
 */
async function callHop(
  context: ChainContext,
  modelId: string,
  model: ModelConfig,
  timeoutMs: number,
  request: ChatRequest,
  sink?: StreamSink,
): Promise<Completion> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new ProviderError("timeout", `no answer within timeout_ms ${timeoutMs}`));
  }, timeoutMs);
  const onJobAbort = () => controller.abort(context.signal.reason);
  if (context.signal.aborted) onJobAbort();
  else context.signal.addEventListener("abort", onJobAbort, { once: true });
  try {
    const provider = context.providers.get(model.provider);
    const call = {
      request,
      modelId,
      model,
      upstreamName: model.name ?? modelId,
      signal: controller.signal,
    };
    const completion = sink ? await provider.stream(call, sink) : await provider.generate(call);
    if (completion.finishReason === "content_filter") {
      // The provider bills a filtered completion like any other: keep its usage for the charge.
      throw new ProviderError(
        "content_filter",
        "the provider stopped the completion with finish_reason content_filter",
        { usage: completion.usage },
      );
    }
    return completion;
  } catch (error) {
    const interruption = interruptionOf(context.signal);
    if (interruption) throw interruption;
    if (timedOut) throw new ProviderError("timeout", `no answer within timeout_ms ${timeoutMs}`);
    if (error instanceof ProviderError) throw error;
    throw new ProviderError(
      "invalid_response",
      `unexpected error: ${(error as Error)?.message ?? String(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    clearTimeout(timer);
    context.signal.removeEventListener("abort", onJobAbort);
  }
}

/** Sums USD amounts without letting binary float noise pile up over many calls. */
function addUsd(total: number, amount: number): number {
  return Math.round((total + amount) * 1e10) / 1e10;
}

function logAttempt(context: ChainContext, attempt: Attempt, hopIndex: number): void {
  const fields = {
    job_id: context.jobId,
    tenant: context.data.tenant,
    route: context.data.route,
    hop: hopIndex,
    current_model: attempt.model,
    provider: attempt.provider,
    outcome: attempt.outcome,
    fallback_reason: attempt.reason,
    http_status: attempt.http_status,
    duration_ms: attempt.duration_ms,
  };
  if (attempt.outcome === "success") context.logger.info(fields, "hop succeeded");
  else if (attempt.reason === "auth_error") {
    context.logger.error(
      { ...fields, detail: attempt.message },
      "hop failed: provider rejected our credentials (configuration fault)",
    );
  } else
    context.logger.warn({ ...fields, detail: attempt.message }, `hop ${attempt.outcome}: ${attempt.reason}`);
}

/**
 * Runs a job through its fallback chain from where its progress says, and returns either the
 * terminal outcome or a time to resume at (a wait too long to hold a worker slot for).
 */
export async function runChain(context: ChainContext): Promise<ChainResult> {
  const { data, config, clock } = context;
  const progress: JobProgress = context.progress
    ? structuredClone(context.progress)
    : { hop: 0, tries: 0, attempts: [], cost_usd: 0 };
  progress.started_at ??= unixSeconds(clock.now());
  const estimate = estimateRequest(data.request);
  let dirty = false;
  const finish = (
    outcome: Omit<JobOutcome, "attempts" | "cost_usd" | "started_at" | "finished_at">,
  ): ChainResult => ({
    kind: "finished",
    outcome: {
      ...outcome,
      cost_usd: progress.cost_usd,
      attempts: progress.attempts,
      started_at: progress.started_at,
      finished_at: unixSeconds(clock.now()),
    },
  });
  const record = (attempt: Attempt) => {
    progress.attempts.push(attempt);
    dirty = true;
    logAttempt(context, attempt, progress.hop);
    context.events?.attempt(attempt);
  };
  context.events?.status("running");

  for (; progress.hop < data.chain.length; progress.hop += 1, progress.tries = 0) {
    const hop = data.chain[progress.hop];
    if (!hop) break;
    const model = config.file.models[hop.model];
    const providerId = model?.provider ?? "unknown";
    const skip = model ? precheckHop(hop, model, estimate, data, progress.cost_usd) : undefined;
    if (skip || !model) {
      record({
        model: hop.model,
        provider: providerId,
        outcome: "skipped",
        reason: skip?.reason ?? "bad_request",
        message: skip?.message ?? `model ${hop.model} is no longer configured`,
        duration_ms: 0,
        started_at: unixSeconds(clock.now()),
      });
      continue;
    }
    const maxRetries = hop.max_retries ?? 0;
    const strip = needsImageStrip(model, estimate, data);
    const request = strip ? stripImages(data.request) : data.request;
    const note = strip ? "images replaced by a text placeholder (on_missing_vision: strip)" : undefined;
    const timeoutMs = hop.timeout_ms ?? DEFAULT_HOP_TIMEOUT_MS;
    while (true) {
      if (dirty) {
        await context.saveProgress(progress);
        dirty = false;
      }
      const admission = await admitHop(context, hop, model, estimate, timeoutMs);
      if (admission.kind === "defer") {
        context.logger.debug(
          { job_id: context.jobId, current_model: hop.model, until: admission.until },
          "waiting for capacity",
        );
        return { kind: "deferred", until: admission.until, progress };
      }
      if (admission.kind === "skip") {
        record({
          model: hop.model,
          provider: providerId,
          outcome: "skipped",
          reason: admission.reason,
          message: admission.message,
          duration_ms: 0,
          started_at: unixSeconds(clock.now()),
        });
        break;
      }
      const ticket = admission.ticket;
      const startedMs = clock.now();
      const hopIndex = progress.hop;
      let streamed = false;
      let streamedCharacters = 0;
      const sink: StreamSink | undefined = context.events
        ? {
            delta: (part) => {
              streamed = true;
              streamedCharacters += streamedCharactersOf(part);
              context.events?.delta(hopIndex, part);
            },
          }
        : undefined;
      // A call that ends badly is still charged what the provider bills for it (see call-charge.ts);
      // one interrupted before it was sent (a cancel during admission) reached no provider.
      const dispatched = !context.signal.aborted;
      const charge = (error: ProviderError | undefined) => {
        const billed = chargeUnfinishedCall(model, {
          usage: error?.usage,
          promptEstimate: estimate.promptTokens,
          streamedCharacters,
          abandoned: error === undefined ? dispatched : error.reason === "timeout",
        });
        if (billed.costUsd > 0) progress.cost_usd = addUsd(progress.cost_usd, billed.costUsd);
        return billed;
      };
      try {
        const completion = await callHop(context, hop.model, model, timeoutMs, request, sink);
        const cost = costUsd(model, completion.usage.promptTokens, completion.usage.completionTokens);
        if (ticket) {
          // Settling a success never delays the job's result.
          void context.resilience?.settle(ticket, {
            reason: undefined,
            promptTokens: completion.usage.promptTokens,
            completionTokens: completion.usage.completionTokens,
            costUsd: cost,
          });
        }
        progress.cost_usd = addUsd(progress.cost_usd, cost);
        record({
          model: hop.model,
          provider: providerId,
          outcome: "success",
          ...(note ? { message: note } : {}),
          duration_ms: clock.now() - startedMs,
          started_at: unixSeconds(startedMs),
        });
        return finish({
          status: "succeeded",
          model: hop.model,
          provider: providerId,
          result: toChatCompletion(completion, {
            id: `chatcmpl-${context.jobId.replace(/^job_/, "")}`,
            modelId: hop.model,
            created: unixSeconds(clock.now()),
          }),
        });
      } catch (caught) {
        if (caught instanceof JobInterruption) {
          const before = progress.cost_usd;
          const billed = charge(undefined);
          if (ticket)
            await context.resilience?.settle(ticket, { reason: undefined, aborted: true, ...billed });
          if (caught.kind === "cancelled") {
            // No attempt is recorded: the call neither succeeded nor failed for one of the
            // contract's reasons; the job's status and error say it was cancelled.
            return finish({
              status: "cancelled",
              error: { type: "cancelled", message: "the job was cancelled" },
            });
          }
          if (caught.kind === "shutdown") {
            // The run that resumes this job counts on from its saved progress, this charge included.
            if (progress.cost_usd !== before) {
              await context
                .saveProgress(progress)
                .catch((error: Error) =>
                  context.logger.error(
                    { job_id: context.jobId, err: error.message, cost_usd: progress.cost_usd },
                    "could not save the cost of a call abandoned on shutdown into the job's progress",
                  ),
                );
            }
            return { kind: "deferred", until: clock.now(), progress };
          }
          // Lock lost: another run owns the job and its progress now; this call's charge is in the
          // tenant's budget and usage (settled above) but not the job's cost, which that run counts.
          throw caught;
        }
        const error = caught as ProviderError;
        if (streamed) context.events?.restart(hopIndex, error.reason);
        const billed = charge(error);
        if (ticket) {
          await context.resilience?.settle(ticket, {
            reason: error.reason,
            retryAfterMs: error.retryAfterMs,
            ...billed,
          });
        }
        progress.tries += 1;
        record({
          model: hop.model,
          provider: providerId,
          outcome: "error",
          reason: error.reason,
          ...(error.httpStatus !== undefined ? { http_status: error.httpStatus } : {}),
          ...(error.retryAfterMs !== undefined ? { retry_after_ms: error.retryAfterMs } : {}),
          message: (note ? `${note}; ${error.message}` : error.message).slice(0, 500),
          duration_ms: clock.now() - startedMs,
          started_at: unixSeconds(startedMs),
        });
        const decision = decide(context, error, maxRetries - (progress.tries - 1), progress.tries);
        if (decision.action === "fail") {
          return finish({
            status: "failed",
            error: { type: decision.type, message: `${hop.model}: ${error.message}`.slice(0, 500) },
          });
        }
        if (decision.action === "next") break;
        if (decision.delayMs > INLINE_WAIT_LIMIT_MS) {
          return { kind: "deferred", until: clock.now() + decision.delayMs, progress };
        }
        try {
          await abortableDelay(decision.delayMs, context.signal);
        } catch {
          const interruption = interruptionOf(context.signal);
          if (interruption?.kind === "cancelled") {
            return finish({
              status: "cancelled",
              error: { type: "cancelled", message: "the job was cancelled" },
            });
          }
          if (interruption?.kind === "shutdown") return { kind: "deferred", until: clock.now(), progress };
          throw interruption ?? new Error("wait aborted");
        }
      }
    }
  }
  const reasons = progress.attempts.map(
    (attempt) => `${attempt.model}: ${attempt.reason ?? attempt.outcome}`,
  );
  return finish({
    status: "failed",
    error: {
      type: "all_models_failed",
      message: `every model in the chain failed (${reasons.join("; ")})`.slice(0, 1000),
    },
  });
}
