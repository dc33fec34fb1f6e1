import {
  BREAKER_FAILURES,
  breakerFor,
  budgetPeriods,
  bucketCapacity,
  type Config,
  type Keys,
  type LimitScope,
  type LimitsConfig,
  type Logger,
  type ModelConfig,
  type Reason,
  type RedisClient,
} from "@cascade/shared";
import { ADMIT_LUA } from "./lua/admit.lua.js";
import { SETTLE_LUA } from "./lua/settle.lua.js";


/** What one hop's call needs from the shared limits. */
export interface HopRequest {
  providerId: string;
  modelId: string;
  model: ModelConfig;
  tenant: string;
  user: string | undefined;
  route: string | null;
  /** Prompt estimate + max_tokens (estimate): what tpm buckets reserve. */
  tokens: number;
  /** Estimated cost of the call: what budgets reserve. */
  costUsd: number;
  /** How long the probe lease lasts if this call is a half-open probe. */
  timeoutMs: number;
}

/** Held by an admitted call until it is settled. */
export interface Ticket {
  request: HopRequest;
  keys: string[];
  breaker: { state: number; window: number; probe: boolean; config: ReturnType<typeof breakerFor> };
  cooldowns: number[];
  tpm: Array<{ key: number; rate: number; capacity: number; reserved: number }>;
  budgets: Array<{ key: number; reserved: number; ttl_s: number }>;
  stats: number[];
}

export type Admission =
  | { admitted: true; ticket: Ticket }
  | {
      admitted: false;
      reason: Extract<Reason, "circuit_open" | "rate_limited" | "over_budget">;
      waitMs: number | undefined;
      detail: string;
    };

export interface CallOutcome {
  reason: Reason | undefined;
  retryAfterMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  costUsd?: number;
  /** The call was abandoned (cancellation, shutdown): give back what it reserved, judge nothing. */
  aborted?: boolean;
}

class KeyList {
  readonly keys: string[] = [];
  private readonly index = new Map<string, number>();
  add(key: string): number {
    let position = this.index.get(key);
    if (position === undefined) {
      this.keys.push(key);
      position = this.keys.length;
      this.index.set(key, position);
    }
    return position;
  }
}

type Commands = RedisClient & {
  cascadeAdmit(numberOfKeys: number, ...args: string[]): Promise<[number, string, string?, string?]>;
  cascadeSettle(numberOfKeys: number, ...args: string[]): Promise<string[]>;
};

/**
 * Breakers, token buckets, cooldowns and budgets shared by every worker through Redis. Each hop
 * costs one round trip to be admitted; a settle round trip follows only when there is something
 * to settle (a failure, a probe, a 429, tpm or budget reservations, or spend to record).
 */
export class Resilience {
  private readonly redis: Commands;

  constructor(
    redis: RedisClient,
    private readonly config: Config,
    private readonly keys: Keys,
    private readonly logger: Logger,
    private readonly clock: { now(): number } = { now: () => Date.now() },
  ) {
    redis.defineCommand("cascadeAdmit", { lua: ADMIT_LUA });
    redis.defineCommand("cascadeSettle", { lua: SETTLE_LUA });
    this.redis = redis as Commands;
  }

  private limitsFor(request: HopRequest): Array<{ scope: LimitScope; id: string; limits: LimitsConfig }> {
    const provider = this.config.file.providers[request.providerId];
    const tenant = this.config.tenants.get(request.tenant)?.config;
    const found: Array<{ scope: LimitScope; id: string; limits: LimitsConfig | undefined }> = [
      { scope: "provider", id: request.providerId, limits: provider?.limits },
      { scope: "model", id: request.modelId, limits: request.model.limits },
      { scope: "tenant", id: request.tenant, limits: tenant?.limits },
    ];
    return found.filter(
      (entry): entry is { scope: LimitScope; id: string; limits: LimitsConfig } => !!entry.limits,
    );
  }

  /** One round trip: may this call go ahead now? Takes tokens, budget and probe lease if so. */
  async admit(request: HopRequest): Promise<Admission> {
    const provider = this.config.file.providers[request.providerId];
    if (!provider) throw new Error(`unknown provider ${request.providerId}`);
    const list = new KeyList();
    const breaker = breakerFor(request.providerId, provider, request.modelId, request.model);
    const breakerSpec = {
      state: list.add(this.keys.breaker(breaker.id)),
      window: list.add(this.keys.breakerWindow(breaker.id)),
      window_ms: breaker.window_ms,
      lease_ms: request.timeoutMs + 5_000,
    };
    // A 429 cools down the provider, and the model too where it has limits of its own.
    const cooldowns = [list.add(this.keys.cooldown("provider", request.providerId))];
    if (request.model.limits) cooldowns.push(list.add(this.keys.cooldown("model", request.modelId)));
    const buckets: Array<{ key: number; rate: number; capacity: number; cost: number; max_wait?: number }> = [];
    const tpm: Ticket["tpm"] = [];
    for (const { scope, id, limits } of this.limitsFor(request)) {
      if (limits.rpm) {
        buckets.push({
          key: list.add(this.keys.bucket(scope, id, "rpm")),
          rate: limits.rpm / 60_000,
          capacity: bucketCapacity(limits.rpm, limits.burst),
          cost: 1,
        });
      }
      if (limits.tpm) {
        const entry = {
          key: list.add(this.keys.bucket(scope, id, "tpm")),
          rate: limits.tpm / 60_000,
          capacity: bucketCapacity(limits.tpm),
        };
        // A denial's wait assumes no reservation is given back; calls in flight usually return
        // most of theirs, so look again after one bucket's worth of refill at the latest.
        buckets.push({ ...entry, cost: request.tokens, max_wait: Math.max(250, Math.ceil(entry.capacity / entry.rate)) });
        tpm.push({ ...entry, reserved: request.tokens });
      }
    }
    const budgets: Array<{ key: number; cap: number; amount: number; ttl_s: number }> = [];
    const tenant = this.config.tenants.get(request.tenant)?.config;
    const periods = budgetPeriods(this.clock.now());
    const addBudget = (subject: string, caps: { daily_usd?: number; monthly_usd?: number } | undefined) => {
      if (!caps) return;
      if (caps.daily_usd !== undefined) {
        budgets.push({
          key: list.add(this.keys.spend(subject, periods.day)),
          cap: caps.daily_usd,
          amount: request.costUsd,
          ttl_s: periods.dayTtlSeconds,
        });
      }
      if (caps.monthly_usd !== undefined) {
        budgets.push({
          key: list.add(this.keys.spend(subject, periods.month)),
          cap: caps.monthly_usd,
          amount: request.costUsd,
          ttl_s: periods.monthTtlSeconds,
        });
      }
    };
    addBudget(`tenant:${request.tenant}`, tenant?.budget);
    if (request.user !== undefined) addBudget(`user:${request.tenant}:${request.user}`, tenant?.user_budget);
    const stats = [
      list.add(this.keys.stats("provider", request.providerId)),
      list.add(this.keys.stats("model", request.modelId)),
    ];

    const spec = JSON.stringify({ breakers: [breakerSpec], cooldowns, buckets, budgets, stats });
    const reply = await this.redis.cascadeAdmit(list.keys.length, ...list.keys, spec);
    if (Number(reply[0]) === 1) {
      return {
        admitted: true,
        ticket: {
          request,
          keys: list.keys,
          breaker: {
            state: breakerSpec.state,
            window: breakerSpec.window,
            probe: reply[1] === "1",
            config: breaker,
          },
          cooldowns,
          tpm,
          budgets: budgets.map((budget) => ({
            key: budget.key,
            reserved: budget.amount,
            ttl_s: budget.ttl_s,
          })),
          stats,
        },
      };
    }
    const wait = Number(reply[2]);
    return {
      admitted: false,
      reason: reply[1] as "circuit_open" | "rate_limited" | "over_budget",
      waitMs: wait >= 0 ? wait : undefined,
      detail: reply[3] ?? "",
    };
  }

  /**
   * Reports a call's outcome. Returns a promise that resolves once settled (or at once when
   * there is nothing to settle); failures of the settle itself are logged, never thrown.
   */
  async settle(ticket: Ticket, outcome: CallOutcome): Promise<void> {
    const failure = outcome.reason !== undefined && BREAKER_FAILURES.has(outcome.reason);
    const rateLimited = outcome.reason === "rate_limited";
    const cost = outcome.costUsd ?? 0;
    const needed =
      failure ||
      ticket.breaker.probe ||
      rateLimited ||
      ticket.tpm.length > 0 ||
      ticket.budgets.length > 0 ||
      cost > 0;
    if (!needed) return;
    const { request } = ticket;
    const usedTokens = (outcome.promptTokens ?? 0) + (outcome.completionTokens ?? 0);
    const periods = budgetPeriods(this.clock.now());
    const keys = [...ticket.keys];
    let usage: { key: number; fields: Record<string, number>; ttl_s: number } | null = null;
    if (cost > 0) {
      keys.push(this.keys.usage(request.tenant, periods.dayDate));
      const fields: Record<string, number> = { total: cost, [`model:${request.modelId}`]: cost };
      if (request.route) fields[`route:${request.route}`] = cost;
      if (request.user !== undefined) fields[`user:${request.user}`] = cost;
      usage = { key: keys.length, fields, ttl_s: 400 * 86_400 };
    }
    const spec = {
      failure,
      breakers: [
        {
          state: ticket.breaker.state,
          window: ticket.breaker.window,
          probe: ticket.breaker.probe && !outcome.aborted,
          window_ms: ticket.breaker.config.window_ms,
          min_requests: ticket.breaker.config.min_requests,
          threshold: ticket.breaker.config.failure_threshold,
          open_ms: ticket.breaker.config.open_ms,
        },
      ],
      cooldown: rateLimited ? { keys: ticket.cooldowns, retry_after_ms: outcome.retryAfterMs ?? null } : null,
      // tpm reserved the estimate; give back (or take) the difference from what was really used.
      buckets: ticket.tpm.map((bucket) => ({
        key: bucket.key,
        rate: bucket.rate,
        capacity: bucket.capacity,
        refund: bucket.reserved - usedTokens,
      })),
      budgets: ticket.budgets.map((budget) => ({
        key: budget.key,
        delta: cost - budget.reserved,
        ttl_s: budget.ttl_s,
      })),
      usage,
      stats: ticket.stats,
    };
    try {
      const transitions = await this.redis.cascadeSettle(keys.length, ...keys, JSON.stringify(spec));
      for (const change of transitions) {
        const to = change.split(":")[1];
        this.logger.warn(
          {
            breaker: ticket.breaker.config.id,
            provider: request.providerId,
            current_model: request.modelId,
            state: to,
          },
          `circuit breaker ${ticket.breaker.config.id} is now ${to}`,
        );
        void this.redis
          .publish(this.keys.breakerChannel, `${ticket.breaker.config.id}:${to}`)
          .catch(() => {});
      }
    } catch (error) {
      this.logger.error(
        { err: (error as Error).message, provider: request.providerId },
        "could not settle a call's limits",
      );
    }
  }
}
