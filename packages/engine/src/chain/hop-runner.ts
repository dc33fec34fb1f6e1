import {
  type Attempt,
  type Config,
  type HopConfig,
  type ModelConfig,
  primaryProvider,
  type Reason,
  type RedactionScope,
  redactSecrets,
  unixSeconds,
  usageCostUsd,
} from "@cascade/shared";
import { type ModelTarget, strategyOf, targetsOf } from "../pools/model-targets.js";
import { ERROR_MESSAGE_CHARS, ProviderError } from "../providers/provider-error.js";
import type { Completion, StreamSink } from "../providers/types.js";
import type { Ticket } from "../resilience/resilience.js";
import { abortableDelay } from "../timing/abortable-delay.js";
import { admitHop } from "./admission.js";
import {
  CallRecord,
  chargeUnfinishedCall,
  completionChargeUsage,
  streamedCharactersOf,
} from "./call-charge.js";
import type { ChainContext, ChainResult } from "./chain-context.js";
import type { ChainProgress } from "./chain-progress.js";
import { toChatCompletion } from "./chat-completion.js";
import { brokenStreamError, canContinue, isContinuable, withPrefill } from "./continuation.js";
import { callHop, hopTimeouts } from "./hop-call.js";
import { decideAfterError, deploymentFailureOf, type HopDecision } from "./hop-decision.js";
import { type InterruptionKind, interruptionOf, JobInterruption } from "./interruption.js";
import { failedOutcome, succeededOutcome } from "./job-outcome.js";
import {
  needsImageStrip,
  precheckHop,
  type RequestEstimate,
  remainingCostSkip,
  stripImages,
} from "./prechecks.js";

/** An interrupted call's attempt message (no reason of the contract's fits a call stopped by us). */
const STOPPED_CALL: Record<InterruptionKind, string> = {
  cancelled: "the call was stopped: the job was cancelled",
  lock_lost: "the call was stopped: this worker lost the job's lock",
  shutdown: "the call was stopped: the worker was shutting down",
};

/** Waits up to this long sleep in the worker; longer ones hand the job back to the delayed set. */
const INLINE_WAIT_LIMIT_MS = 1_000;

/**
 * Failures that say something about one deployment (its key, its quota, its region) rather than
 * about the request: the hop tries another deployment of the same model first.
 */
const DEPLOYMENT_FAILURES: ReadonlySet<Reason> = new Set([
  "rate_limited",
  "server_error",
  "timeout",
  "network_error",
  "invalid_response",
  "auth_error",
]);

/**
 * Whether a failure says something about the deployment that answered it: one of the above, or a
 * refusal specific to its provider (a model name its endpoint does not know, a parameter it does
 * not take), which another deployment's endpoint may well take.
 */
function isDeploymentFailure(error: ProviderError): boolean {
  return DEPLOYMENT_FAILURES.has(error.reason) || (error.reason === "bad_request" && error.providerSpecific);
}

/** What a hop leaves the chain with: the run's result, or "next" to move on to the next hop. */
type HopStep = ChainResult | "next";

/**
 * How much of the config's secrets an upstream's error text is matched against (RedactionScope):
 * pieces and masked forms of a key only in a 401's or 403's, by status (providers quote the key they
 * got there, and never the request), and only of the key this call sent (another key's pieces in it
 * could only be the tenant's words). Anything else may echo the request or the model's answer.
 * Host names, which a tenant could only confirm whole, in a network error's (Node's own text) and a
 * 5xx's (a proxy naming what it could not reach), not in a 4xx's, which quote requests.
 */
function redactionScope(config: Config, target: ModelTarget, error: ProviderError): RedactionScope {
  const status = error.httpStatus;
  const authFailure = status === 401 || status === 403;
  return {
    // The key the call sent: a deployment's own, else its provider's (as the registry picks it).
    keyPieces: authFailure
      ? config.providerKeys.get(target.deployment?.ownKey ? target.deployment.key : target.providerId)
      : undefined,
    hosts:
      status === undefined ? error.reason === "network_error" || error.reason === "timeout" : status >= 500,
  };
}

function skipped(
  modelId: string,
  providerId: string,
  reason: Attempt["reason"],
  message: string,
  now: number,
) {
  return {
    model: modelId,
    provider: providerId,
    outcome: "skipped",
    reason,
    message,
    duration_ms: 0,
    started_at: unixSeconds(now),
  } satisfies Attempt;
}

/**
 * Settles one call's ticket, once, however the call ended, and charges the job what the call
 * cost. A success's settlement is not awaited (it never delays the job's result); a failure's is,
 * so the breaker and cooldown it sets are in place before the chain picks its next step (after a
 * 429 it resolves to how long the provider's cooldown now lasts). A call that ends badly is still
 * charged what the provider bills for it (see call-charge.ts).
 */
function settleCall(
  context: ChainContext,
  run: ChainProgress,
  ticket: Ticket | undefined,
  model: ModelConfig,
  completion: Completion | undefined,
  failure: ProviderError | JobInterruption | undefined,
  call: CallRecord,
): Promise<number | undefined> | undefined {
  if (completion) {
    const usage = completionChargeUsage(completion, call.promptEstimate);
    // A provider that reported no usage: the answer shows the estimate it was charged, as LiteLLM
    // counts it, rather than zeros that disagree with its cost.
    completion.usage = usage;
    const { promptTokens, completionTokens } = usage;
    const cost = usageCostUsd(model, usage);
    run.addCost(cost);
    if (ticket) {
      void context.resilience?.settle(ticket, {
        reason: undefined,
        promptTokens,
        completionTokens,
        costUsd: cost,
      });
    }
    return undefined;
  }
  const error = failure instanceof ProviderError ? failure : undefined;
  // Saved with the progress that holds its cost (a failed call's progress is saved before the
  // next try): its journal entry may still be there then.
  if (ticket?.journal) run.callCharged(ticket.journal.field);
  const billed = chargeUnfinishedCall(model, {
    // A whole answer not passed on (no finish reason) is charged as the completion it is.
    usage: error?.unfinishedAnswer
      ? completionChargeUsage(error.unfinishedAnswer, call.promptEstimate)
      : error?.usage,
    promptEstimate: call.promptEstimate,
    streamedCharacters: call.streamedCharacters,
    reported: call.reported,
    // A stream the provider had begun that broke off or went wrong; one it ended with its own
    // error event (an upstream 429 or 5xx behind a proxy, Anthropic's overloaded_error) is not
    // billed, and carries usage where it was.
    answered: call.answered && (error?.reason === "network_error" || error?.reason === "invalid_response"),
    // An interrupted call was abandoned only if it was sent: a cancel during admission reached
    // no provider. A call not streamed whose 2xx answer could not be read (not JSON, cut off)
    // was billed its whole completion, as one abandoned after it was sent.
    abandoned:
      error === undefined
        ? call.dispatched
        : error.localTimeout || (call.respondedWhole && error.unreadableAnswer),
    wholeAnswerTokens: call.wholeAnswerTokens,
  });
  run.addCost(billed.costUsd);
  if (run.continued) {
    run.continued.charged.promptTokens += billed.promptTokens;
    run.continued.charged.completionTokens += billed.completionTokens;
  }
  if (!ticket) return undefined;
  return context.resilience?.settle(
    ticket,
    error
      ? { reason: error.reason, retryAfterMs: error.retryAfterMs, ...billed }
      : { reason: undefined, aborted: true, ...billed },
  );
}

/** What a failed stream means for the caller: nothing was shown, the chain continues it, or the answer ends. */
type BrokenStream = "unseen" | "continue" | "end";

/**
 * After a stream failed: whether the caller had been shown part of the answer. If so, and the
 * answer can be continued (on_stream_failure: continue, no tool calls shown), the chain goes on
 * from what was shown (`run.continued`, keeping the first failure); otherwise the caller's
 * answer ends with the first failure.
 */
function brokenStreamStep(
  context: ChainContext,
  run: ChainProgress,
  modelId: string,
  failure: ProviderError,
): BrokenStream {
  const shown = context.continuation?.shown();
  if (!shown || (!shown.content && !shown.toolCalls)) return "unseen";
  // A content filter or a refused request is not a broken stream: nobody should finish that text.
  if (context.continuation?.policy !== "continue" || shown.toolCalls || !isContinuable(failure)) return "end";
  run.continued = {
    partial: shown.content,
    error: run.continued?.error ?? brokenStreamError(modelId, failure),
    charged: run.continued?.charged ?? { promptTokens: 0, completionTokens: 0 },
  };
  return "continue";
}

/** Whether every provider a model may go to takes tool arguments as any text (`openai`-type ones do). */
function takesRawToolArguments(config: ChainContext["config"], modelId: string, model: ModelConfig): boolean {
  return targetsOf(modelId, model).every((target) => {
    const type = config.file.providers[target.providerId]?.type;
    return type === "openai" || type === "simulated";
  });
}

/** The shown part and its continuation as one answer (the continuation's leading space dropped as streamed). */
function joinContinuation(partial: string, continuation: string | null): string {
  const rest = continuation ?? "";
  return /\s$/.test(partial) ? partial + rest.replace(/^\s+/, "") : partial + rest;
}

/**
 * Runs the chain's current hop: prechecks, then for each try admit → call → settle → record →
 * decide. Returns the run's result when the job ends or must wait, "next" to fall back. A
 * JobInterruption (cancel, lock loss, shutdown) is thrown on, after the call is settled, for the
 * chain to turn into its result (interruption.ts).
 */
export async function runHop(
  context: ChainContext,
  run: ChainProgress,
  estimate: RequestEstimate,
): Promise<HopStep> {
  const { data, config, clock } = context;
  // An interrupted job records no more skips: without this, a cancel or shutdown that struck
  // while the previous hop was skipped would let the chain run out and end all_models_failed.
  const interrupted = interruptionOf(context.signal);
  if (interrupted) throw interrupted;
  const progress = run.progress;
  const hopIndex = progress.hop;
  const hop = data.chain[hopIndex];
  if (!hop) return "next";
  const model = config.file.models[hop.model];
  const providerId = model ? primaryProvider(model) : "unknown";
  const skip = model
    ? precheckHop(
        hop,
        model,
        estimate,
        data,
        progress.cost_usd,
        !estimate.rawToolArguments || takesRawToolArguments(config, hop.model, model),
      )
    : undefined;
  if (skip || !model) {
    run.record(
      skipped(
        hop.model,
        providerId,
        skip?.reason ?? "bad_request",
        skip?.message ?? `model ${hop.model} is no longer configured`,
        clock.now(),
      ),
    );
    return "next";
  }
  const maxRetries = hop.max_retries ?? 0;
  const strip = needsImageStrip(model, estimate, data);
  const asked = strip ? stripImages(data.request) : data.request;
  const note = strip ? "images replaced by a text placeholder (on_missing_vision: strip)" : undefined;
  const timeouts = hopTimeouts(hop);
  const maxInlineWaitMs = context.maxInlineWaitMs ?? INLINE_WAIT_LIMIT_MS;
  const targets = targetsOf(hop.model, model);
  const placeLeadMs = Number.isFinite(maxInlineWaitMs) ? Math.min(maxInlineWaitMs, 1_000) / 2 : 0;
  /** A call of this visit failed: the next one (a retry, another deployment) is checked again. */
  let calledBefore = false;
  /**
   * Until when a tpm bucket's denial is looked at again soon, in the worker (refunds of calls in
   * flight often come within it): a job's first visit of the hop, for up to a second; a run that
   * resumes at the hop (it waited there) does not, so a wait holds a slot once. After that the
   * refill's wait decides, and a long one is waited in the delayed set. A gateway call (no slot to
   * free) looks soon throughout.
   */
  const tpmLooksSoonUntil = clock.now() + (run.resumedAtHop === hopIndex ? 0 : maxInlineWaitMs);
  while (true) {
    if (calledBefore) {
      // What the failed calls were charged counts against the request's max_cost_usd.
      const ceiling = remainingCostSkip(model, estimate, data, progress.cost_usd);
      if (ceiling) {
        run.record(skipped(hop.model, providerId, ceiling.reason, ceiling.message, clock.now()));
        return "next";
      }
    }
    // A shown answer that broke off goes on only where the model can continue it (prefill).
    if (run.continued && !canContinue(model)) {
      const message = "continuing a partial answer needs the prefill capability";
      run.record(skipped(hop.model, providerId, "capability_missing", message, clock.now()));
      return "next";
    }
    const continued = run.continued;
    const request = continued ? withPrefill(asked, continued.partial) : asked;
    // A place in line this job holds on this hop: wait for it, then call without lining up again.
    const reservation = progress.reservation?.hop === hopIndex ? progress.reservation : undefined;
    let held: { target: ModelTarget; place: { dueMs: number; booked: number[] } } | undefined;
    if (reservation) {
      const waitMs = reservation.at - clock.now();
      if (waitMs > maxInlineWaitMs) return run.defer(reservation.at - placeLeadMs);
      if (waitMs > 0) await abortableDelay(waitMs, context.signal);
      const target = targets.find((candidate) => candidate.deployment?.id === reservation.deployment);
      // A deployment gone from the config since: the place is lost, the job lines up again.
      if (target) held = { target, place: { dueMs: reservation.due, booked: reservation.booked } };
      run.release();
    } else if (progress.reservation) run.release();
    if (run.unsaved) await run.save();
    const tpmWaits = run.tpmWaits;
    const admission = await admitHop(
      context,
      hop,
      model,
      estimate,
      timeouts.timeoutMs,
      // Deployments of a pooled model that failed on this visit of the hop: the next try goes
      // elsewhere. Kept in the progress, so a run resumed after a wait passes them over too.
      progress.failed_deployments,
      held,
      { looksSoon: clock.now() < tpmLooksSoonUntil, waits: tpmWaits },
    );
    // Waits for a tpm bucket in a row: counted when one is waited in the delayed set, ended by
    // anything else (the hop admitted, left, or waiting for another limit).
    run.setTpmWaits(admission.kind === "defer" && admission.tpm ? tpmWaits + 1 : 0);
    // Interrupted while being admitted: a skip or a wait would hide it (the job would end failed,
    // or be parked instead of cancelled). An admitted hop goes on: callHop throws the interruption
    // before any request is sent, and its ticket is settled below like any stopped call's.
    const interruption = admission.kind === "go" ? undefined : interruptionOf(context.signal);
    if (interruption) throw interruption;
    if (admission.kind === "in_line") {
      context.metrics?.limitWait?.(admission.target.providerId, hop.model);
      run.hold({
        hop: hopIndex,
        ...(admission.target.deployment ? { deployment: admission.target.deployment.id } : {}),
        at: admission.until,
        due: admission.place.dueMs,
        booked: admission.place.booked,
      });
      if (admission.until - clock.now() > maxInlineWaitMs) {
        // Back a little before the slot: the resumed run waits out the rest in the worker, so a
        // slow pick-up does not make it late for its slot (and lose it).
        return run.defer(admission.until - placeLeadMs);
      }
      continue;
    }
    if (admission.kind === "defer") {
      context.logger.debug(
        { job_id: context.jobId, current_model: hop.model, until: admission.until },
        "waiting for capacity",
      );
      context.metrics?.limitWait?.(providerId, hop.model);
      const waitMs = admission.until - clock.now();
      if (waitMs > maxInlineWaitMs) return run.defer(admission.until);
      await abortableDelay(Math.max(0, waitMs), context.signal);
      continue;
    }
    if (admission.kind === "skip") {
      // A pool whose other deployments are open or cooling down after one of them failed: the
      // hop's own retries still apply to that failure (the retry passes them over, as any pick
      // does). A spent budget is no deployment's doing: a retry would be refused the same way.
      const failure =
        admission.reason === "over_budget" ? undefined : deploymentFailureOf(progress, hop.model);
      const decision = failure ? decideAfterTry(context, run, hop, failure, maxRetries) : undefined;
      if (decision?.action === "retry") {
        const deferred = await waitToRetry(context, run, decision.delayMs, maxInlineWaitMs);
        if (deferred) return deferred;
        continue;
      }
      // The hop ends here: the skip says why the pool's other deployments were not called.
      const attempt: Attempt = skipped(
        hop.model,
        admission.provider ?? providerId,
        admission.reason,
        admission.message,
        clock.now(),
      );
      if (admission.waitMs !== undefined) attempt.retry_after_ms = admission.waitMs;
      if (admission.deployment !== undefined) attempt.deployment = admission.deployment;
      run.record(attempt);
      return "next";
    }
    const target = admission.target;
    const startedMs = clock.now();
    // Not streamed (no sink): the provider is asked for the whole answer at once, whose output
    // limit is the request's max_tokens, else what the adapter sends for none (Anthropic needs
    // one), else the contract's estimate.
    const call = new CallRecord(
      estimate.promptTokens,
      context.events
        ? undefined
        : (estimate.requestedMaxTokens ??
            context.providers.get(target.providerId, target.deployment?.key).defaultMaxTokens ??
            estimate.maxTokens),
    );
    let streamed = false;
    // A continuation's model may repeat the space the prefill had to end without (Anthropic
    // refuses trailing whitespace in a prefill): drop it once, so the caller's text reads on.
    let trimLeading = continued !== undefined && /\s$/.test(continued.partial);
    const sink: StreamSink | undefined = context.events
      ? {
          delta: (part) => {
            if (trimLeading && part.content !== undefined) {
              trimLeading = false;
              const content = part.content.replace(/^\s+/, "");
              if (!content && !part.toolCalls) return;
              part = { ...part, content };
            }
            streamed = true;
            call.streamedCharacters += streamedCharactersOf(part);
            context.events?.delta(hopIndex, part);
          },
          heartbeat: () => {
            call.answered = true;
          },
          usage: (reported) => {
            call.reported = reported;
          },
        }
      : undefined;
    call.dispatched = !context.signal.aborted;
    let completion: Completion | undefined;
    let failure: ProviderError | JobInterruption | undefined;
    let shownBroken: BrokenStream = "unseen";
    const strategy = target.deployment ? strategyOf(model) : undefined;
    // least_busy counts this call in flight across workers until it ends (plain models: nothing).
    const inFlight =
      strategy === "least_busy" && target.deployment
        ? { key: target.deployment.key, callId: `${context.jobId}:${run.progress.attempts.length}` }
        : undefined;
    if (inFlight) context.resilience?.pools.callStarted(inFlight.key, inFlight.callId, timeouts.timeoutMs);
    context.events?.calling?.(hopIndex, target.providerId, target.deployment?.id);
    try {
      // Written down before it goes out: a process killed with the call in flight still has it
      // charged, by another process (ADR 0033).
      if (admission.ticket && context.resilience) {
        const written = context.resilience.journalCall(admission.ticket, {
          jobId: context.jobId,
          firstModel: data.chain[0]?.model ?? hop.model,
        });
        if (written) {
          await written;
          // Interrupted while its entry went out: the call is not sent, so nothing is abandoned.
          call.dispatched = !context.signal.aborted;
        }
      }
      completion = await callHop(
        context,
        hop.model,
        model,
        target,
        timeouts,
        request,
        sink,
        context.events ? undefined : call,
      );
      if (strategy === "lowest_latency" && target.deployment)
        context.resilience?.pools.latency(hop.model, target.deployment.key, clock.now() - startedMs);
    } catch (caught) {
      // callHop throws a ProviderError, or the job's JobInterruption.
      failure = caught as ProviderError | JobInterruption;
      // What an upstream said goes to the tenant (attempts, the job's or a broken stream's error)
      // and the log: never with a key we sent it. Scrubbed here, before anything quotes it, and
      // only then cut to length (a key across the cut would no longer match whole).
      if (failure instanceof ProviderError)
        failure.message = redactSecrets(
          config,
          failure.message,
          redactionScope(config, target, failure),
        ).slice(0, ERROR_MESSAGE_CHARS);
      if (streamed && failure instanceof ProviderError) {
        context.events?.restart(hopIndex, failure.reason);
        shownBroken = brokenStreamStep(context, run, hop.model, failure);
      }
    } finally {
      if (inFlight) context.resilience?.pools.callEnded(inFlight.key, inFlight.callId);
    }
    const endedMs = clock.now();
    const settling = settleCall(context, run, admission.ticket, model, completion, failure, call);
    const cooledMs = settling ? await settling : undefined;
    // The answer is in and settled (a success's settlement is queued, a probe's sent): the worker's
    // slot goes to the next job now (a worker holding jobs ahead has the bookkeeping below wait
    // while newer answers are read).
    if (completion && context.answered) await context.answered();
    if (completion) {
      const attempt: Attempt = {
        model: hop.model,
        provider: target.providerId,
        outcome: "success",
        duration_ms: endedMs - startedMs,
        started_at: unixSeconds(startedMs),
      };
      if (target.deployment) attempt.deployment = target.deployment.id;
      if (note) attempt.message = note;
      run.record(attempt);
      if (continued) {
        // One answer from several calls: its text joined, its usage what all of them were charged.
        // Its log probabilities would cover the continuation only: none, rather than a part.
        const { charged } = continued;
        const { logprobs: _continuationOnly, ...continuation } = completion;
        completion = {
          ...continuation,
          content: joinContinuation(continued.partial, completion.content),
          usage: {
            ...completion.usage,
            promptTokens: completion.usage.promptTokens + charged.promptTokens,
            completionTokens: completion.usage.completionTokens + charged.completionTokens,
          },
        };
      }
      const result = toChatCompletion(completion, {
        // One id per answer, as OpenAI's: the job's or gateway request's id without its prefix.
        id: `chatcmpl-${context.jobId.replace(/^(job|req)_/, "")}`,
        modelId: hop.model,
        created: unixSeconds(clock.now()),
        logprobs: context.data.request.logprobs === true,
      });
      return {
        kind: "finished",
        outcome: succeededOutcome(progress, hop.model, target.providerId, result, clock.now()),
      };
    }
    if (!(failure instanceof ProviderError)) {
      // Interrupted with the call sent: it was charged above (a provider finishes and bills what
      // it was sent), so it is one of the job's attempts, or the job's cost would name no call.
      if (failure instanceof JobInterruption && call.dispatched)
        run.record({
          model: hop.model,
          provider: target.providerId,
          ...(target.deployment ? { deployment: target.deployment.id } : {}),
          outcome: "error",
          message: STOPPED_CALL[failure.kind],
          duration_ms: endedMs - startedMs,
          started_at: unixSeconds(startedMs),
        });
      throw failure;
    }
    const error = failure;
    calledBefore = true;
    // After a 429, when the provider is tried again: the cooldown it set (the provider's hint, or
    // Cascade's own, doubling over a streak of 429s), which a caller's Retry-After is made from.
    const retryAfterMs = cooledMs ?? error.retryAfterMs;
    run.record({
      model: hop.model,
      provider: target.providerId,
      ...(target.deployment ? { deployment: target.deployment.id } : {}),
      // Refused before it was sent (an image URL the guard refuses): no upstream call was made.
      outcome: error.unsent ? "skipped" : "error",
      reason: error.reason,
      ...(error.httpStatus !== undefined ? { http_status: error.httpStatus } : {}),
      ...(retryAfterMs !== undefined ? { retry_after_ms: retryAfterMs } : {}),
      message: (note ? `${note}; ${error.message}` : error.message).slice(0, 500),
      duration_ms: endedMs - startedMs,
      started_at: unixSeconds(startedMs),
    });
    // lowest_latency measures successes only: a deployment failing for reasons of its own (a
    // refused key) would stay "never measured" and go first every time; it goes last for a while.
    if (strategy === "lowest_latency" && target.deployment && DEPLOYMENT_FAILURES.has(error.reason))
      context.resilience?.pools.failed(hop.model, target.deployment.key);
    // A pool tries its other deployments before the hop's own retries and fallbacks count; a shown
    // answer that broke off is continued there (prefill) as the next hop would continue it.
    const poolGoesOn = shownBroken === "unseen" || (shownBroken === "continue" && canContinue(model));
    if (target.deployment && poolGoesOn && isDeploymentFailure(error)) {
      const failed = run.deploymentFailed(target.deployment.id);
      if (targets.some((other) => !failed.includes(other.deployment?.id ?? ""))) continue;
    }
    // A shown stream that cannot go on (on_stream_failure: error, or tool calls were shown) ends here.
    if (shownBroken === "end") {
      progress.tries += 1;
      const jobError = run.continued?.error ?? brokenStreamError(hop.model, error);
      return { kind: "finished", outcome: failedOutcome(progress, jobError, clock.now()) };
    }
    const decision = decideAfterTry(context, run, hop, error, maxRetries);
    if (decision.action === "fail") {
      // A continuation the provider refused is not what the caller hears: the original failure is.
      if (run.continued) {
        return { kind: "finished", outcome: failedOutcome(progress, run.continued.error, clock.now()) };
      }
      const jobError = { type: decision.type, message: `${hop.model}: ${error.message}`.slice(0, 500) };
      const outcome = failedOutcome(progress, jobError, clock.now());
      return error.param === undefined
        ? { kind: "finished", outcome }
        : { kind: "finished", outcome, param: error.param };
    }
    if (decision.action === "next") return "next";
    const deferred = await waitToRetry(context, run, decision.delayMs, maxInlineWaitMs);
    if (deferred) return deferred;
  }
}

/**
 * One try of the hop failed (for a pool: on every deployment it could call): counts the try and
 * decides whether the hop is tried again, the chain moves on, or the job fails.
 */
function decideAfterTry(
  context: ChainContext,
  run: ChainProgress,
  hop: HopConfig,
  error: ProviderError,
  maxRetries: number,
): HopDecision {
  const progress = run.progress;
  progress.tries += 1;
  const decision = decideAfterError(context, hop, error, maxRetries - (progress.tries - 1), progress.tries);
  // A model that refuses the prefill (a 400) says nothing of the others: try the next one.
  if (run.continued && decision.action === "fail" && error.reason === "bad_request")
    return { action: "next" };
  return decision;
}

/**
 * Waits out a retry's backoff: in the worker when short, else by handing the job back (the
 * returned result). A retry of the hop may go to any of its deployments again.
 */
async function waitToRetry(
  context: ChainContext,
  run: ChainProgress,
  delayMs: number,
  maxInlineWaitMs: number,
): Promise<ChainResult | undefined> {
  run.clearFailedDeployments();
  if (delayMs > maxInlineWaitMs) return run.defer(context.clock.now() + delayMs);
  // Rejects with the job's JobInterruption when the job is interrupted while it waits.
  await abortableDelay(delayMs, context.signal);
  return undefined;
}
