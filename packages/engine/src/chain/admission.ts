import { costUsd, type HopConfig, type ModelConfig, type Reason } from "@cascade/shared";
import { type ModelTarget, strategyOf, targetsOf } from "../pools/model-targets.js";
import { orderDeployments } from "../pools/pool-picker.js";
import type { HopRequest } from "../resilience/hop-plan.js";
import type { Admission, PlaceHeld, Ticket } from "../resilience/resilience.js";
import type { ChainContext } from "./chain-context.js";
import type { RequestEstimate } from "./prechecks.js";

export type HopAdmission =
  | { kind: "go"; ticket: Ticket | undefined; target: ModelTarget }
  /** Ask again at `until`. */
  | { kind: "defer"; until: number; detail: string; tpm?: boolean }
  /** A place in line on `target`: call at `until` (this worker's clock), holding `place`. */
  | { kind: "in_line"; until: number; target: ModelTarget; place: PlaceHeld }
  /** `provider`: of the deployment whose refusal is reported (a pool's), when not the model's. */
  | {
      kind: "skip";
      reason: Reason;
      message: string;
      waitMs?: number;
      provider?: string;
      deployment?: string;
    };

/**
 * The furthest ahead a job books its rpm tokens: past this it waits unbooked (in the delayed set)
 * and lines up when it returns, so one backlog cannot book a limit's next hour.
 */
export const PLACE_HORIZON_MS = 60_000;

type Denial = Extract<Admission, { admitted: false }> & { target: ModelTarget };

function hopRequest(
  context: ChainContext,
  hop: HopConfig,
  model: ModelConfig,
  estimate: RequestEstimate,
  timeoutMs: number,
  target: ModelTarget,
): HopRequest {
  const { data } = context;
  return {
    providerId: target.providerId,
    modelId: hop.model,
    model,
    tenant: data.tenant,
    user: data.user,
    route: data.route,
    tokens: estimate.promptTokens + estimate.maxTokens,
    costUsd: costUsd(model, estimate.promptTokens, estimate.maxTokens),
    timeoutMs,
    ...(target.deployment ? { deployment: target.deployment } : {}),
  };
}

/**
 * Asks the shared limits whether a hop may call now, and where. A pooled model's deployments are
 * read in one round trip and tried in its strategy's order, passing over those open, cooling down
 * or out of tokens. When none can call now, the job takes a place in line on the one whose next
 * token comes first (within its deadline and PLACE_HORIZON_MS), or waits (defer) and asks again;
 * a hop whose breakers are all open or whose budget is spent is skipped.
 *
 * `exclude`: deployments that already failed on this visit of the hop. `held`: the place in line
 * the job holds on this hop (its booked rpm tokens are taken; the rest is asked now). A place
 * whose deployment has since opened or is cooling down is given up for the pool's others.
 */
export async function admitHop(
  context: ChainContext,
  hop: HopConfig,
  model: ModelConfig,
  estimate: RequestEstimate,
  timeoutMs: number,
  exclude: readonly string[] | undefined,
  held?: { target: ModelTarget; place: PlaceHeld },
  tpm: TpmWaiting = { looksSoon: false, waits: 0 },
): Promise<HopAdmission> {
  const all = targetsOf(hop.model, model);
  let left =
    exclude && exclude.length > 0
      ? all.filter((target) => !exclude.includes(target.deployment?.id ?? ""))
      : all;
  const resilience = context.resilience;
  if (!resilience) {
    const targets = left.length > 0 ? left : all;
    const order = orderDeployments("weighted", targets, targets.map(unmeasured), context.random);
    return { kind: "go", ticket: undefined, target: targets[order[0] ?? 0] as ModelTarget };
  }
  const now = context.clock.now();
  const reserveMs = Math.max(0, Math.min(PLACE_HORIZON_MS, context.data.deadline_at - now));
  // The common case, a plain model with no place held: one question, without the closures below.
  if (!held && all.length === 1) {
    const target = all[0] as ModelTarget;
    const admission = await resilience.admitOrLineUp(
      hopRequest(context, hop, model, estimate, timeoutMs, target),
      { reserveMs },
    );
    if (admission.admitted === true) return { kind: "go", ticket: admission.ticket, target };
    if (admission.admitted === "in_line") {
      return {
        kind: "in_line",
        until: context.clock.now() + admission.waitMs,
        target,
        place: { dueMs: admission.dueMs, booked: admission.booked },
      };
    }
    return denied(context, [{ ...admission, target }], tpm);
  }
  const requestOf = (target: ModelTarget) => hopRequest(context, hop, model, estimate, timeoutMs, target);
  const ask = async (
    target: ModelTarget,
    options: { reserveMs?: number; held?: PlaceHeld },
  ): Promise<HopAdmission | Denial> => {
    const admission = await resilience.admitOrLineUp(requestOf(target), options);
    if (admission.admitted === true) return { kind: "go", ticket: admission.ticket, target };
    if (admission.admitted === "in_line") {
      const { dueMs, booked } = admission;
      return {
        kind: "in_line",
        until: context.clock.now() + admission.waitMs,
        target,
        place: { dueMs, booked },
      };
    }
    return { ...admission, target };
  };
  if (held) {
    const answer = await ask(held.target, { held: held.place });
    if (!isDenial(answer)) return answer;
    // The held deployment cannot take the call now: the place is lost; a pool passes it over
    // where it is open or cooling down, and the job lines up again like any other.
    const closed = answer.reason === "circuit_open" || answer.detail === "cooldown";
    const others = left.filter((target) => target !== held.target);
    if (closed && others.length > 0) left = others;
  }
  const targets = left.length > 0 ? left : all;
  if (targets.length === 1) {
    const answer = await ask(targets[0] as ModelTarget, { reserveMs });
    return !isDenial(answer) ? answer : denied(context, [answer], tpm);
  }
  const states = await resilience.pools.state(targets.map(requestOf), strategyOf(model));
  const order = orderDeployments(strategyOf(model), targets, states, context.random);
  const denials: Denial[] = [];
  for (const index of order) {
    const state = states[index];
    // Out of tokens for now: no use asking; it may still give a place in line below.
    if (state && !state.blocked && state.waitMs > 0) continue;
    const answer = await ask(targets[index] as ModelTarget, {});
    if (!isDenial(answer)) return answer;
    denials.push(answer);
  }
  // None can call now: a place in line where the next token comes first (a later place elsewhere
  // when that one was just taken).
  const line = order
    .filter((index) => states[index] && !states[index].blocked && states[index].waitMs > 0)
    .sort((a, b) => (states[a]?.waitMs ?? 0) - (states[b]?.waitMs ?? 0));
  for (const index of line.slice(0, 2)) {
    const answer = await ask(targets[index] as ModelTarget, { reserveMs });
    if (!isDenial(answer)) return answer;
    denials.push(answer);
  }
  return denied(context, denials, tpm);
}

/** The deployment whose refusal a pooled hop's skip reports (each pooled attempt names one). */
function deploymentOf(denial: Denial): { deployment?: string } {
  return denial.target.deployment ? { deployment: denial.target.deployment.id } : {};
}

function isDenial(answer: HopAdmission | Denial): answer is Denial {
  return "admitted" in answer;
}

function unmeasured() {
  return { blocked: false, headroom: 1, waitMs: 0, inFlight: 0, latencyMs: undefined, failedRecently: false };
}

/** How soon a caller that may look again soon looks at a tpm bucket again. */
const TPM_RELOOK_MS = 200;
/** The first wait in the delayed set for a tpm bucket looks again within this at most. */
const TPM_RELOOK_CAP_MS = 2_000;
/**
 * Doublings of that for waits in a row: up to 8 s. More (tested: up to the refill's wait) left a
 * bucket that refunds most of each reservation idle while its backlog slept (resilience-tpm.test:
 * 7 calls of 15 in 30 s with reservations 40× the bucket).
 */
const TPM_RELOOK_DOUBLINGS = 2;

/** A hop's caller and tpm buckets: whether it may look again soon, and its waits in a row so far. */
export interface TpmWaiting {
  looksSoon: boolean;
  waits: number;
}

const MESSAGES = {
  circuit_open: (detail: string) => `circuit breaker is open (${detail})`,
  // The call's estimate is reserved whole: a budget with anything left may still be too short for it.
  over_budget: (detail: string) => `budget would be exceeded (${detail})`,
};

/**
 * Where nothing was admitted: wait for the earliest capacity within the job's deadline (defer),
 * else skip the hop, naming the most telling reason (a spent budget, then rate limits, then open
 * breakers).
 */
function denied(context: ChainContext, denials: Denial[], tpm: TpmWaiting): HopAdmission {
  const now = context.clock.now();
  const where = (denial: Denial) =>
    denial.target.deployment ? `deployment ${denial.target.deployment.id}: ` : "";
  const budget = denials.find((denial) => denial.reason === "over_budget");
  if (budget) {
    return {
      kind: "skip",
      reason: "over_budget",
      message: MESSAGES.over_budget(budget.detail),
      provider: budget.target.providerId,
      ...deploymentOf(budget),
    };
  }
  // A tpm bucket's wait counts its refill alone; calls in flight give back what they reserved and
  // did not use as they settle, often much sooner. While the caller may look again soon (a
  // gateway call, or a job's first second of waiting in its worker), it looks every 200 ms and
  // its deadline is judged by that; after that, the refill's wait judges the deadline, and the
  // caller (a job, in the delayed set) looks again within the bucket's `relookMs` (at most 2 s),
  // doubled for each wait in a row up to 8 s, so a backlog behind one bucket wakes less often.
  const judged = (denial: Denial) =>
    tpm.looksSoon && denial.relookMs !== undefined && denial.waitMs !== undefined
      ? Math.min(denial.waitMs, TPM_RELOOK_MS)
      : denial.waitMs;
  const limited = denials
    .filter((denial) => denial.reason === "rate_limited" && denial.waitMs !== undefined)
    // Ties (tpm buckets all looked at again in 200 ms) go to the shortest real wait, which a
    // caller's Retry-After is made of.
    .sort((a, b) => (judged(a) ?? 0) - (judged(b) ?? 0) || (a.waitMs ?? 0) - (b.waitMs ?? 0))[0];
  const limitedWait = limited && judged(limited);
  if (limited && limitedWait !== undefined && now + limitedWait <= context.data.deadline_at) {
    const relookMs =
      limited.relookMs === undefined || tpm.looksSoon
        ? undefined
        : Math.min(TPM_RELOOK_CAP_MS, limited.relookMs) * 2 ** Math.min(tpm.waits, TPM_RELOOK_DOUBLINGS);
    const waitMs = Math.min(limitedWait, relookMs ?? limitedWait);
    // A little jitter keeps jobs waiting on one bucket from all waking at the same instant.
    const jitter = Math.floor(context.random() * Math.min(100, waitMs * 0.1));
    return {
      kind: "defer",
      until: now + waitMs + jitter,
      detail: limited.detail,
      ...(relookMs !== undefined ? { tpm: true } : {}),
    };
  }
  const first = limited ?? denials.find((denial) => denial.reason === "rate_limited") ?? denials[0];
  if (!first) return { kind: "skip", reason: "rate_limited", message: "no deployment could take the call" };
  if (first.reason !== "rate_limited")
    return {
      kind: "skip",
      reason: first.reason,
      message: where(first) + MESSAGES[first.reason](first.detail),
      provider: first.target.providerId,
      ...deploymentOf(first),
    };
  return {
    kind: "skip",
    reason: "rate_limited",
    provider: first.target.providerId,
    ...deploymentOf(first),
    message:
      where(first) +
      (first.waitMs === undefined
        ? `no ${first.detail} capacity`
        : `no ${first.detail} capacity for ${first.waitMs} ms, past the job's deadline`),
    // When capacity returns: a gateway caller's Retry-After comes from the earliest of these.
    ...(first.waitMs !== undefined ? { waitMs: first.waitMs } : {}),
  };
}
