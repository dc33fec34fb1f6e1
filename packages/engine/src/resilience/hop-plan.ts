import {
  BREAKER_DEFAULTS,
  breakerFor,
  breakerId,
  bucketCapacity,
  budgetPeriods,
  type Config,
  type Keys,
  type LimitScope,
  type LimitsConfig,
  type ModelConfig,
  type ResolvedBreaker,
  type SpendOwner,
} from "@cascade/shared";
import type { ModelTarget } from "../pools/model-targets.js";
import { LEASE_MS, type LeaseSpec } from "./leases.js";

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
  /** The deployment of a pooled model the call goes to: its own breaker, buckets and cooldown. */
  deployment?: ModelTarget["deployment"];
}

/**
 * Everything about a hop's limits that does not change from call to call: its keys and the
 * admit.lua spec, built once per provider, model, tenant, user, day and timeout. Indexes below
 * are 1-based positions in `keys`, as the scripts read them from KEYS.
 */
export interface HopPlan {
  keys: string[];
  spec: string;
  breaker: { state: number; window: number; config: ResolvedBreaker };
  cooldowns: number[];
  tpm: Array<{ key: number; rate: number; capacity: number; slice: number }>;
  /** Every bucket (rpm and tpm), for reading how much room a deployment has (pool-state.lua). */
  buckets: Array<{ key: number; rate: number; capacity: number }>;
  budgets: Array<{ key: number; ttl_s: number }>;
  stats: number[];
  /** No buckets and no budgets: a call may be admitted in-process while its breaker is known closed. */
  breakerOnly: boolean;
  /** Every bucket hands out leases, so calls may be admitted from what this worker holds. */
  leasable: boolean;
  /** Leases in the order admit.lua reports them: buckets, then budgets. */
  leases: LeaseSpec[];
  /** Invalidated when any of these change (breaker id, cooldown keys). */
  watch: string[];
  usageKey: string;
}

/** The keys a plan names, each once, in the order first added; positions are 1-based like KEYS. */
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

interface PlannedBucket {
  key: number;
  rate: number;
  capacity: number;
  tpm: boolean;
  slice: number;
}

const MAX_PLANS = 5_000;
const DAY_MS = 86_400_000;

/**
 * A lease is at most a quarter of the bucket and what refills in LEASE_MS: small limits
 * (rpm 120, burst 2) get none and stay exact; large ones save most round trips.
 */
function sliceOf(capacity: number, rate: number): number {
  return Math.floor(Math.min(capacity / 4, rate * LEASE_MS));
}

/** Whether a model's calls can cost anything: it has a price, and not all of it 0. */
function costsMoney(model: ModelConfig): boolean {
  const price = model.price;
  if (!price) return false;
  return (
    price.input_per_mtok > 0 ||
    price.output_per_mtok > 0 ||
    (price.cached_input_per_mtok ?? 0) > 0 ||
    (price.cache_write_per_mtok ?? 0) > 0
  );
}

/**
 * Builds and caches hop plans. A plan depends on the UTC day (budget keys), so the cache is
 * emptied when the day changes; it is also capped, since user ids are unbounded.
 */
export class HopPlans {
  private readonly plans = new Map<string, HopPlan>();
  private dayEndsAt = 0;

  constructor(
    private readonly config: Config,
    private readonly keys: Keys,
  ) {}

  /** The plan for this request at `nowMs`: cached on the hot path, built on first use. */
  planFor(request: HopRequest, nowMs: number): HopPlan {
    // The UTC day changes the budget keys; it is worked out once per day, not per call.
    if (nowMs >= this.dayEndsAt || nowMs < this.dayEndsAt - DAY_MS) {
      this.dayEndsAt = (Math.floor(nowMs / DAY_MS) + 1) * DAY_MS;
      this.plans.clear();
    }
    const cacheKey = `${request.providerId}\n${request.modelId}\n${request.deployment?.key ?? ""}\n${request.tenant}\n${request.user ?? ""}\n${request.timeoutMs}`;
    const cached = this.plans.get(cacheKey);
    if (cached) return cached;
    const plan = this.build(request, nowMs);
    if (this.plans.size >= MAX_PLANS) this.plans.clear();
    this.plans.set(cacheKey, plan);
    return plan;
  }

  private limitsFor(request: HopRequest): Array<{ scope: LimitScope; id: string; limits: LimitsConfig }> {
    const provider = this.config.file.providers[request.providerId];
    const tenant = this.config.tenants.get(request.tenant)?.config;
    const found: Array<{ scope: LimitScope; id: string; limits: LimitsConfig | undefined }> = [
      { scope: "provider", id: request.providerId, limits: provider?.limits },
      { scope: "model", id: request.modelId, limits: request.model.limits },
      { scope: "tenant", id: request.tenant, limits: tenant?.limits },
    ];
    if (request.deployment) {
      found.push({ scope: "deployment", id: request.deployment.key, limits: request.deployment.limits });
    }
    return found.filter(
      (entry): entry is { scope: LimitScope; id: string; limits: LimitsConfig } => !!entry.limits,
    );
  }

  private build(request: HopRequest, nowMs: number): HopPlan {
    const periods = budgetPeriods(nowMs);
    const provider = this.config.file.providers[request.providerId];
    if (!provider) throw new Error(`unknown provider ${request.providerId}`);
    const list = new KeyList();
    const breaker = request.deployment
      ? {
          id: breakerId("deployment", request.deployment.key),
          ...BREAKER_DEFAULTS,
          ...provider.breaker,
          ...request.model.breaker,
          ...request.deployment.breaker,
        }
      : breakerFor(request.providerId, provider, request.modelId, request.model);
    const breakerSpec = {
      state: list.add(this.keys.breaker(breaker.id)),
      window: list.add(this.keys.breakerWindow(breaker.id)),
      window_ms: breaker.window_ms,
      lease_ms: request.timeoutMs + 5_000,
    };
    // A 429 cools down the provider, and the model too where it has limits of its own.
    // A pool's deployment cools down alone: its siblings (other keys, other regions) go on.
    const cooldownKeys = request.deployment
      ? [this.keys.cooldown("deployment", request.deployment.key)]
      : [this.keys.cooldown("provider", request.providerId)];
    if (request.model.limits && !request.deployment)
      cooldownKeys.push(this.keys.cooldown("model", request.modelId));
    const cooldowns = cooldownKeys.map((key) => list.add(key));
    const buckets: PlannedBucket[] = [];
    const tpm: HopPlan["tpm"] = [];
    for (const { scope, id, limits } of this.limitsFor(request)) {
      if (limits.rpm) {
        buckets.push({
          key: list.add(this.keys.bucket(scope, id, "rpm")),
          rate: limits.rpm / 60_000,
          capacity: bucketCapacity(limits.rpm, limits.burst),
          tpm: false,
          slice: sliceOf(bucketCapacity(limits.rpm, limits.burst), limits.rpm / 60_000),
        });
      }
      if (limits.tpm) {
        const entry = {
          key: list.add(this.keys.bucket(scope, id, "tpm")),
          rate: limits.tpm / 60_000,
          capacity: bucketCapacity(limits.tpm, limits.tpm_burst),
        };
        buckets.push({ ...entry, tpm: true, slice: sliceOf(entry.capacity, entry.rate) });
        tpm.push({ ...entry, slice: sliceOf(entry.capacity, entry.rate) });
      }
    }
    const budgets: Array<{ key: number; cap: number; ttl_s: number }> = [];
    const tenant = this.config.tenants.get(request.tenant)?.config;
    const addBudget = (owner: SpendOwner, caps: { daily_usd?: number; monthly_usd?: number } | undefined) => {
      if (caps?.daily_usd !== undefined) {
        budgets.push({
          key: list.add(this.keys.spend(owner, periods.day)),
          cap: caps.daily_usd,
          ttl_s: periods.dayTtlSeconds,
        });
      }
      if (caps?.monthly_usd !== undefined) {
        budgets.push({
          key: list.add(this.keys.spend(owner, periods.month)),
          cap: caps.monthly_usd,
          ttl_s: periods.monthTtlSeconds,
        });
      }
    };
    // A model without a price costs nothing: no budget is asked (an overspent one would refuse
    // even $0, and what it settles is 0).
    if (costsMoney(request.model)) {
      addBudget({ tenant: request.tenant }, tenant?.budget);
      if (request.user !== undefined)
        addBudget({ tenant: request.tenant, user: request.user }, tenant?.user_budget);
    }
    const stats = [
      list.add(this.keys.stats("provider", request.providerId)),
      list.add(this.keys.stats("model", request.modelId)),
    ];
    if (request.deployment) stats.push(list.add(this.keys.stats("deployment", request.deployment.key)));
    return {
      keys: list.keys,
      spec: JSON.stringify({ breakers: [breakerSpec], cooldowns, buckets, budgets, stats }),
      breaker: { state: breakerSpec.state, window: breakerSpec.window, config: breaker },
      cooldowns,
      tpm,
      buckets: buckets.map(({ key, rate, capacity }) => ({ key, rate, capacity })),
      budgets: budgets.map((budget) => ({ key: budget.key, ttl_s: budget.ttl_s })),
      stats,
      breakerOnly: buckets.length === 0 && budgets.length === 0,
      leasable: buckets.every((bucket) => bucket.slice > 0),
      leases: [
        ...buckets.map((bucket) => ({
          key: list.keys[bucket.key - 1] as string,
          kind: bucket.tpm ? ("tpm" as const) : ("rpm" as const),
          ttl_s: 0,
          slice: bucket.slice,
        })),
        ...budgets.map((budget) => ({
          key: list.keys[budget.key - 1] as string,
          kind: "budget" as const,
          ttl_s: budget.ttl_s,
          slice: 0,
        })),
      ],
      watch: [breaker.id, ...cooldownKeys],
      usageKey: this.keys.usage(request.tenant, periods.dayDate),
    };
  }
}
