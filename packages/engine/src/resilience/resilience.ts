import {
  BREAKER_FAILURES,
  type Clock,
  type Config,
  type JobProgress,
  type Keys,
  type Logger,
  type Reason,
  type RedisClient,
  type StrayCharge,
  USAGE_TOTAL_FIELD,
  usageField,
} from "@cascade/shared";
import { PoolSignals } from "../pools/pool-signals.js";
import { CallJournal, type CallJournalOptions, type JournalHandle, type LostCall } from "./call-journal.js";
import { type HopPlan, HopPlans, type HopRequest } from "./hop-plan.js";
import { Leases } from "./leases.js";
import { ADMIT_LUA } from "./lua/admit.lua.js";
import { SETTLE_LUA } from "./lua/settle.lua.js";
import { CLOSE_WAIT_MS, SettleQueue } from "./settle-queue.js";

export type { LostCall } from "./call-journal.js";
export type { HopRequest } from "./hop-plan.js";

/** Held by an admitted call until it is settled. */
export interface Ticket {
  request: HopRequest;
  plan: HopPlan;
  probe: boolean;
  /** For a probe: the end of its lease as admit.lua set it, which identifies it when handed back. */
  probeUntil?: number;
  /** Cooldowns (KEYS indexes) whose 429 streak this call's success ends (admit.lua told). */
  streaks?: number[];
  /** The call's entry in this process's journal of calls in flight (written before it went out). */
  journal?: JournalHandle;
  /** The usage fields the call's cost goes to, where already worked out. */
  usageFields?: string[];
}

export type Admission =
  | { admitted: true; ticket: Ticket }
  | {
      admitted: false;
      reason: Extract<Reason, "circuit_open" | "rate_limited" | "over_budget">;
      waitMs: number | undefined;
      detail: string;
      /** A tpm bucket's: look again within this, whatever `waitMs` (refunds may come first). */
      relookMs?: number;
    };

export interface CallOutcome {
  reason: Reason | undefined;
  retryAfterMs?: number;
  /** Tokens the call used (or, where the provider said nothing, our estimate of what it billed). */
  promptTokens?: number;
  completionTokens?: number;
  /** What the call is charged: budgets and usage settle to this, whatever the outcome. */
  costUsd?: number;
  /**
   * The call was abandoned (cancellation, shutdown, lock loss): it says nothing about the
   * provider's health, so breakers ignore it and a probe is handed back; it is still charged.
   */
  aborted?: boolean;
}

/** How an admission may wait for rpm tokens (admit.lua ARGV[5] and ARGV[6]). */
export interface AdmitOptions {
  /** Take a place in line when the rpm tokens come within this many ms (0 or absent: never). */
  reserveMs?: number;
  /** The call holds this place in line: its booked rpm buckets are not asked again. */
  held?: PlaceHeld;
}

/** A place in line as admit.lua booked it: due at `dueMs` (Redis time) on the buckets `booked`. */
export interface PlaceHeld {
  dueMs: number;
  /** Positions in the plan's buckets (1-based, as admit.lua counts them). */
  booked: number[];
}

/** A place in line: the call's rpm tokens are booked for `waitMs` from now (see AdmitOptions). */
export interface PlaceInLine extends PlaceHeld {
  admitted: "in_line";
  waitMs: number;
}

/** The usage hash fields a call's cost goes to: the tenant's total, its model, route, user, deployment. */
function usageFieldsOf(request: HopRequest): string[] {
  const fields = [USAGE_TOTAL_FIELD, usageField("model", request.modelId)];
  if (request.route) fields.push(usageField("route", request.route));
  if (request.user !== undefined) fields.push(usageField("user", request.user));
  if (request.deployment) fields.push(usageField("deployment", request.deployment.key));
  return fields;
}

type Commands = RedisClient & {
  cascadeAdmit(
    numberOfKeys: number,
    ...args: Array<string | number>
  ): Promise<[number, string, string?, string?, string?, string?]>;
  cascadeSettle(numberOfKeys: number, ...args: string[]): Promise<string[]>;
};

/** How long a breaker seen closed (and its provider not cooling down) is trusted in-process. */
const KNOWN_CLEAR_MS = 1_000;
/** Successful calls' settlements are gathered this long, then written in one script call. */
const SETTLE_BATCH_MS = 100;
/**
 * How long a call's answer waits for a settlement written at once (a budget's correction no lease
 * covers, a small tpm bucket's refund): a Redis that answers takes a millisecond; one gone quiet
 * must not hold the answer.
 */
const URGENT_SETTLE_WAIT_MS = 250;
/** How long a day's usage hash is kept. */
const USAGE_TTL_S = 400 * 86_400;

/** A breaker moved to state `to` (closed, open, half_open). Must not throw. */
export type BreakerTransitionListener = (breakerId: string, to: string) => void;

/**
 * Breakers, token buckets, cooldowns and budgets shared by every worker through Redis.
 *
 * - A hop is admitted by one script (admit.lua) that checks and takes everything at once.
 * - A hop with no buckets and no budgets skips even that while its breaker was seen closed within
 *   the last second and no pub/sub message said otherwise (breaker transitions, cooldowns and
 *   manual overrides are announced on a channel); its call is counted in the next batch.
 * - Breakers and cooldowns of failures, probes and 429s are settled at once (every worker must
 *   see them now). The money of every call (tpm refunds, budget corrections, spend records) goes
 *   through the settle queue: batched every 100 ms for successes, so the common path costs at
 *   most one round trip per hop, written at once for the rest, and retried until Redis takes it.
 * - Budget and bucket leases (leases.ts) let most calls be admitted without a round trip.
 */
export class Resilience {
  private readonly redis: Commands;
  private readonly plans: HopPlans;
  private readonly clearUntil = new Map<string, number>();
  /**
   * Bumped whenever the known-clear cache is forgotten. An admission whose round trip began
   * before a bump may have read Redis before the change it announces: its answer must not mark
   * anything clear again.
   */
  private clearGeneration = 0;
  private readonly settlements: SettleQueue;
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly leases: Leases;
  private transitionListener: BreakerTransitionListener | undefined;
  /** Pools: the deployments' state, calls in flight and latency, shared through Redis. */
  readonly pools: PoolSignals;
  /** Calls sent and not yet settled, for when this process dies with them in flight (ADR 0033). */
  readonly journal: CallJournal;
  /** Providers whose calls leave over the network (all but simulated ones). */
  private readonly networkProviders = new Set<string>();

  constructor(
    redis: RedisClient,
    config: Config,
    private readonly keys: Keys,
    private readonly logger: Logger,
    // Required, never defaulted: budget days and lease expiry must follow the clock the caller
    // runs on (tests and benches pass their own).
    private readonly clock: Clock,
    journalOptions: CallJournalOptions = {},
  ) {
    this.journal = new CallJournal(redis, keys, logger, journalOptions);
    this.plans = new HopPlans(config, keys);
    for (const [id, provider] of Object.entries(config.file.providers))
      if (provider.type !== "simulated") this.networkProviders.add(id);
    redis.defineCommand("cascadeAdmit", { lua: ADMIT_LUA });
    redis.defineCommand("cascadeSettle", { lua: SETTLE_LUA });
    this.redis = redis as Commands;
    this.pools = new PoolSignals(redis, keys, this.plans, clock);
    this.settlements = new SettleQueue(
      (keys, spec) => {
        // The batch removes its calls' journal entries: those entries go first.
        this.journal.sendUnsent();
        return this.redis.cascadeSettle(keys.length, ...keys, spec);
      },
      keys,
      logger,
      clock,
    );
    this.leases = new Leases((key, balanceUsd, ttlSeconds) => {
      this.batch.correctBudget(key, -balanceUsd, ttlSeconds);
      this.scheduleFlush();
    }, clock);
  }

  private get batch() {
    return this.settlements.pending;
  }

  /**
   * Told of every breaker transition this process's settlements make (metrics). A setter rather
   * than a constructor argument: the process's metrics are built beside, not before, Resilience.
   */
  onBreakerTransition(listener: BreakerTransitionListener): void {
    this.transitionListener = listener;
  }

  /** A breaker this process moved (admit.lua to half_open, settle.lua to open or closed): logged and counted. */
  private transitioned(request: HopRequest, breaker: string, to: string): void {
    this.logger.warn(
      { breaker, provider: request.providerId, current_model: request.modelId, state: to },
      `circuit breaker ${breaker} is now ${to}`,
    );
    this.transitionListener?.(breaker, to);
  }

  /** Follows breaker and cooldown announcements (on a connection in subscriber mode). */
  async listen(subscriber: RedisClient): Promise<void> {
    subscriber.on("message", (channel: string) => {
      // Any change may close a door somewhere: forget everything known, ask Redis next time.
      if (channel === this.keys.breakerChannel) this.forgetClear();
    });
    await subscriber.subscribe(this.keys.breakerChannel);
  }

  private forgetClear(): void {
    this.clearUntil.clear();
    this.clearGeneration += 1;
  }

  private knownClear(plan: HopPlan, nowMs: number): boolean {
    return plan.watch.every((id) => (this.clearUntil.get(id) ?? 0) > nowMs);
  }

  /** May this call go ahead now? Takes tokens, budget and probe lease if so (one round trip at most). */
  async admit(request: HopRequest): Promise<Admission> {
    return (await this.admitOrLineUp(request)) as Admission;
  }

  /**
   * As `admit`, and with `options.reserveMs` a call short of rpm tokens only may take a place in
   * line instead of being refused.
   */
  async admitOrLineUp(request: HopRequest, options: AdmitOptions = {}): Promise<Admission | PlaceInLine> {
    const nowMs = this.clock.now();
    const plan = this.plans.planFor(request, nowMs);
    if (
      // A call holding its place in line has its rpm tokens but not a lease's share of the rest.
      !options.held &&
      this.knownClear(plan, nowMs) &&
      (plan.breakerOnly || (plan.leasable && this.leases.take(plan.leases, request, nowMs)))
    ) {
      this.batch.countCall(
        plan.keys[plan.breaker.window - 1] as string,
        plan.breaker.config.window_ms,
        plan.stats.map((index) => plan.keys[index - 1] as string),
      );
      this.scheduleFlush();
      return { admitted: true, ticket: { request, plan, probe: false } };
    }
    const generation = this.clearGeneration;
    const reply = await this.redis.cascadeAdmit(
      plan.keys.length,
      ...plan.keys,
      plan.spec,
      request.tokens,
      request.costUsd,
      plan.leasable && !options.held ? this.leases.wants(plan.leases, request, nowMs) : "",
      Math.max(0, Math.floor(options.reserveMs ?? 0)),
      options.held ? `${options.held.dueMs}:${options.held.booked.join(",")}` : "",
    );
    if (Number(reply[0]) === 2) {
      return {
        admitted: "in_line",
        waitMs: Number(reply[1]),
        dueMs: Number(reply[2]),
        booked: String(reply[3] ?? "")
          .split(",")
          .filter(Boolean)
          .map(Number),
      };
    }
    if (Number(reply[0]) === 1) {
      const probe = reply[1] === "1";
      if (!probe && generation === this.clearGeneration)
        for (const id of plan.watch) this.clearUntil.set(id, nowMs + KNOWN_CLEAR_MS);
      if (reply[2]) this.leases.add(plan.leases, reply[2], nowMs);
      const ticket: Ticket = { request, plan, probe };
      if (probe) ticket.probeUntil = Number(reply[3]);
      if (reply[4]) this.transitioned(request, plan.breaker.config.id, "half_open");
      if (reply[5]) ticket.streaks = String(reply[5]).split(",").map(Number);
      return { admitted: true, ticket };
    }
    const wait = Number(reply[2]);
    return {
      admitted: false,
      reason: reply[1] as "circuit_open" | "rate_limited" | "over_budget",
      waitMs: wait >= 0 ? wait : undefined,
      detail: reply[3] ?? "",
      ...(reply[4] ? { relookMs: Number(reply[4]) } : {}),
    };
  }

  /**
   * Writes the call's entry in this process's journal before it goes out (ADR 0033): should the
   * process die before the call is settled, another charges its estimate. A call that costs
   * nothing by its estimate is not written. Never throws; for a call that leaves over the network,
   * returns what to wait for before its request goes (the entry handed to the socket first, with
   * the rest of the turn's entries: see CallJournal.written), never a Redis reply.
   */
  journalCall(
    ticket: Ticket,
    call: { jobId: string | undefined; firstModel: string },
  ): Promise<void> | undefined {
    const { request, plan } = ticket;
    if (!(request.costUsd > 0)) return undefined;
    const fields = usageFieldsOf(request);
    ticket.usageFields = fields;
    ticket.journal = this.journal.open(
      {
        usageKey: plan.usageKey,
        fields,
        ttlSeconds: USAGE_TTL_S,
        costUsd: request.costUsd,
        tenant: request.tenant,
        route: request.route,
        firstModel: call.firstModel,
        model: request.modelId,
        provider: request.providerId,
        deployment: request.deployment?.id,
        jobId: call.jobId,
      },
      this.clock.now(),
    );
    // A simulated call sends nothing anyone could bill before this entry is out.
    return this.networkProviders.has(request.providerId) ? this.journal.written() : undefined;
  }

  /**
   * The calls of a job that processes left in flight, unsettled (CallJournal.lostCalls), less those
   * `progress` counts already (`counted_calls`).
   */
  async lostCalls(jobId: string, progress?: Pick<JobProgress, "counted_calls">): Promise<LostCall[]> {
    const lost = await this.journal.lostCalls(jobId);
    if (!progress?.counted_calls?.length) return lost;
    const known = new Set(progress.counted_calls);
    return lost.filter((call) => !known.has(call.id));
  }

  /**
   * Looks for journals of processes that stopped with calls in flight and charges those calls
   * (usage at once; `onCharge` for the request counts, dashboard and metrics).
   */
  recoverStrandedCalls(onCharge: (charge: StrayCharge) => void): void {
    this.journal.startRecovery(onCharge);
  }

  /**
   * Reports a call's outcome. Breakers and cooldowns move at once (failures, probes and 429s
   * must be seen by every worker now), before this resolves; the money (budget corrections, tpm
   * refunds, usage) always goes through the settle queue, which retries it until Redis takes it.
   * Errors of the settle itself are logged, never thrown. Resolves, after a 429, to how long from
   * now the call's cooldowns last (undefined otherwise, or when Redis did not say).
   */
  async settle(ticket: Ticket, outcome: CallOutcome): Promise<number | undefined> {
    const failure = !outcome.aborted && outcome.reason !== undefined && BREAKER_FAILURES.has(outcome.reason);
    const rateLimited = !outcome.aborted && outcome.reason === "rate_limited";
    const cost = outcome.costUsd ?? 0;
    const usedTokens = (outcome.promptTokens ?? 0) + (outcome.completionTokens ?? 0);
    const succeeded = outcome.reason === undefined && !outcome.aborted;
    if (succeeded && ticket.streaks) void this.clearStreaks(ticket, ticket.streaks);
    if (succeeded && !ticket.probe) {
      // Written at once, and awaited: the caller's next call (sent when this one's answer reaches
      // it) is admitted against it, even with a batch still in flight ahead of it. For a short
      // while only: a Redis gone quiet must not hold an answer (the queue writes it later).
      if (this.settleMoney(ticket, usedTokens, cost)) await this.flushWithin(URGENT_SETTLE_WAIT_MS);
      else if (this.batch.size > 0) this.scheduleFlush();
      return undefined;
    }
    const cooledMs =
      failure || rateLimited || ticket.probe
        ? await this.settleBreaker(ticket, outcome, failure, rateLimited)
        : undefined;
    // A call that did not succeed usually gives back its whole reservation: write it now, where
    // another job may be waiting for exactly that budget or those tokens.
    this.settleMoney(ticket, usedTokens, cost);
    void this.flush();
    return cooledMs;
  }

  /**
   * A success after a cooldown: the 429s before it were not consecutive with the next one, which
   * cools down 1 s again (contract, Cooldowns). Rare (the first calls after a cooldown), so its
   * own script call; not retried: a streak left behind expires a minute after its cooldown.
   */
  private async clearStreaks(ticket: Ticket, streaks: number[]): Promise<void> {
    const { plan } = ticket;
    try {
      await this.redis.cascadeSettle(
        plan.keys.length,
        ...plan.keys,
        JSON.stringify({ breakers: [], cooldown: null, clear_streaks: streaks, stats: [] }),
      );
    } catch (error) {
      this.logger.warn(
        { err: (error as Error).message, provider: ticket.request.providerId },
        "could not end a 429 streak after a success",
      );
    }
  }

  /**
   * The breaker and cooldown half of a settlement: one script call, not retried (see docs/decisions).
   * Resolves to the cooldown it set, in ms from now (a 429), else undefined.
   */
  private async settleBreaker(
    ticket: Ticket,
    outcome: CallOutcome,
    failure: boolean,
    rateLimited: boolean,
  ): Promise<number | undefined> {
    const { request, plan } = ticket;
    if (failure || rateLimited) this.forgetClear();
    // Only a success closes a half-open breaker and only a breaker failure re-opens it; a 429,
    // another 4xx, a content filter or an abandoned call hands the probe to the next call.
    const probe = !ticket.probe
      ? false
      : failure
        ? "failure"
        : outcome.reason === undefined && !outcome.aborted
          ? "success"
          : "hand_back";
    const spec = {
      failure,
      breakers: [
        {
          state: plan.breaker.state,
          window: plan.breaker.window,
          probe,
          probe_until: ticket.probeUntil ?? 0,
          window_ms: plan.breaker.config.window_ms,
          min_requests: plan.breaker.config.min_requests,
          threshold: plan.breaker.config.failure_threshold,
          open_ms: plan.breaker.config.open_ms,
        },
      ],
      cooldown: rateLimited ? { keys: plan.cooldowns, retry_after_ms: outcome.retryAfterMs ?? null } : null,
      buckets: [],
      budgets: [],
      usages: [],
      stats: plan.stats,
      // Sent by the script itself, with the write: see settle.lua.
      announce: { channel: this.keys.breakerChannel, message: `${plan.breaker.config.id}:changed` },
    };
    try {
      const transitions = await this.redis.cascadeSettle(
        plan.keys.length,
        ...plan.keys,
        JSON.stringify(spec),
      );
      let cooledMs: number | undefined;
      for (const change of transitions) {
        const [index, to] = change.split(":");
        if (index === "cooldown") cooledMs = Number(to);
        else this.transitioned(request, plan.breaker.config.id, to ?? "unknown");
      }
      return cooledMs !== undefined && Number.isFinite(cooledMs) ? cooledMs : undefined;
    } catch (error) {
      this.logger.error(
        { err: (error as Error).message, provider: request.providerId },
        "could not settle a call's breaker and cooldown",
      );
      return undefined;
    }
  }

  /**
   * Budget corrections, tpm refunds and usage of one call, into the settle queue. Returns true
   * when they should be written now rather than with the next batch.
   */
  private settleMoney(ticket: Ticket, usedTokens: number, cost: number): boolean {
    const { request, plan } = ticket;
    const key = (index: number) => plan.keys[index - 1] as string;
    // What a call reserved but did not use goes back to this worker's lease when it holds one
    // (one write when the lease ends), else to Redis with the next batch.
    const nowMs = this.clock.now();
    // tpm refunds go back to Redis, where every worker sees them; a small bucket (no leases) is
    // often waiting for exactly this refund, so it is written at once rather than in 100 ms, as
    // is a budget's correction (below).
    let urgent = false;
    for (const bucket of plan.tpm) {
      this.batch.refund(key(bucket.key), bucket.rate, bucket.capacity, request.tokens - usedTokens);
      if (bucket.slice < request.tokens) urgent = true;
    }
    for (const budget of plan.budgets) {
      const refund = request.costUsd - cost;
      if (this.leases.credit(key(budget.key), refund, nowMs)) continue;
      this.batch.correctBudget(key(budget.key), -refund, budget.ttl_s);
      // A budget without a lease here is reserved call by call in Redis: the caller's next call,
      // sent as soon as it has this answer, must be admitted against what this one cost, not its
      // estimate (refused for money it did not spend, or let past the budget by a call dearer
      // than its estimate). Written now, before the answer goes.
      if (refund !== 0) urgent = true;
    }
    const fieldNames = ticket.usageFields ?? usageFieldsOf(request);
    if (ticket.journal) {
      // Its entry goes with its usage; a recovery that took this process for dead and charged the
      // estimate meanwhile is corrected to the real cost.
      this.batch.journaledUsage(this.journal.key, ticket.journal.field, {
        key: plan.usageKey,
        cost,
        estimate: request.costUsd,
        ttlSeconds: USAGE_TTL_S,
        fields: fieldNames,
      });
      return urgent;
    }
    if (cost > 0) {
      const fields: Record<string, number> = {};
      for (const field of fieldNames) fields[field] = cost;
      this.batch.recordUsage(plan.usageKey, fields, USAGE_TTL_S);
    }
    return urgent;
  }

  private scheduleFlush(): void {
    // While a refused batch waits for its retry, new settlements simply gather behind it.
    if (this.settlements.backingOff) return;
    if (this.batch.size >= 5_000) {
      void this.flush();
      return;
    }
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => void this.flush(), SETTLE_BATCH_MS);
    this.flushTimer.unref();
  }

  /**
   * Gives back every lease and writes what is pending (on shutdown), retrying a refusing Redis
   * for at most `waitMs`.
   */
  async close(waitMs = CLOSE_WAIT_MS): Promise<void> {
    // Give-backs schedule a flush of their own: clear the timer after them, not before.
    this.leases.releaseAll();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const written = await this.settlements.close(waitMs);
    // After the settlements: every call of this process has settled, so its journal goes, unless
    // settlements could not be written (their calls stay there for another process to charge).
    await this.journal.close(written);
  }

  /** flush, waited for at most `waitMs`. */
  private async flushWithin(waitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
    });
    try {
      await Promise.race([this.flush(), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes the gathered settlements now (resolves when written, or when a retry is scheduled). */
  async flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    return this.settlements.flush();
  }
}
