import type { Config } from "../config/load.js";
import type { AlertRuleConfig } from "../config/schema.js";
import { oldestWaitingMs } from "../fairness/oldest-waiting.js";
import type { RedisClient } from "../redis/connection.js";
import { breakerId, deploymentKey, type Keys } from "../redis/keys.js";
import { budgetPeriods } from "../resilience/periods.js";
import { BREAKER_FIELDS, USAGE_TOTAL_FIELD } from "../resilience/redis-shape.js";
import type { AlertKind } from "./alert-types.js";
import { ruleName } from "./alert-types.js";
import { readRouteWindow, routeWindowShapes } from "./route-window.js";

/**
 * One rule's reading of one subject. `value` null: no verdict (too few requests in the window),
 * the alert keeps its state. Fires when value > fireAbove; resolves when value < resolveBelow.
 */
export interface Measurement {
  id: string;
  rule: string;
  kind: AlertKind;
  subject: string;
  value: number | null;
  /** Shown as the alert's `threshold`. */
  threshold: number;
  fireAbove: number;
  resolveBelow: number;
}

export interface MeasureDeps {
  config: Config;
  redis: RedisClient;
  keys: Keys;
}

/** 1 open (or forced open), 0.5 half-open (still held), 0 closed. */
function breakerValue(fields: Record<string, string>, nowMs: number): number {
  if (fields[BREAKER_FIELDS.forced] === "open") return 1;
  if (fields[BREAKER_FIELDS.forced] === "closed") return 0;
  const state = fields[BREAKER_FIELDS.state];
  // An open breaker past its open_until lets the next call through as a probe: half-open, though
  // no call has come to say so (an override set back to auto, or no traffic since).
  if (state === "open") return nowMs < Number(fields[BREAKER_FIELDS.openUntil] ?? 0) ? 1 : 0.5;
  return state === "half_open" ? 0.5 : 0;
}

/** The breakers of a provider: its own, and those of its models that declare their own breaker. */
export function providerBreakers(config: Config, provider: string): string[] {
  const ids = [breakerId("provider", provider)];
  for (const [id, model] of Object.entries(config.file.models)) {
    if (model.provider === provider && model.breaker) ids.push(breakerId("model", id));
    for (const deployment of model.deployments ?? []) {
      if (deployment.provider === provider)
        ids.push(breakerId("deployment", deploymentKey(id, deployment.id)));
    }
  }
  return ids;
}

/**
 * Age (ms) of the oldest job waiting in the completions queue (wait list or prioritized set), from
 * a sample: fair share orders the prioritized set by tenant and aging, not by age (see
 * oldestWaitingMs).
 */
async function oldestWaitingAgeMs(redis: RedisClient, keys: Keys, nowMs: number): Promise<number> {
  const oldest = await oldestWaitingMs(redis, {
    wait: keys.completionQueueWait,
    prioritized: keys.completionQueuePrioritized,
    delayed: keys.completionQueueDelayed,
    job: (jobId) => keys.completionJob(jobId),
  });
  return oldest === undefined ? 0 : Math.max(0, nowMs - oldest);
}

async function measureRule(deps: MeasureDeps, rule: AlertRuleConfig, nowMs: number): Promise<Measurement[]> {
  const { config, redis, keys } = deps;
  const name = ruleName(rule);
  switch (rule.kind) {
    case "fallback_rate": {
      const shape = routeWindowShapes(config).get(rule.route);
      if (!shape) return [];
      const counts = await readRouteWindow(
        redis,
        keys,
        rule.route,
        shape,
        rule.window_s,
        Math.floor(nowMs / 1000),
      );
      const value =
        counts.requests === 0
          ? 0
          : counts.requests >= rule.min_requests
            ? counts.fallbacks / counts.requests
            : null;
      return [
        {
          id: name,
          rule: name,
          kind: rule.kind,
          subject: rule.route,
          value,
          threshold: rule.fire_above,
          fireAbove: rule.fire_above,
          resolveBelow: rule.resolve_below,
        },
      ];
    }
    case "breaker_open": {
      const ids = providerBreakers(config, rule.provider);
      const hashes = await Promise.all(ids.map((id) => redis.hgetall(keys.breaker(id))));
      return ids.map((id, index) => ({
        id: `${rule.kind}:${id}`,
        rule: name,
        kind: rule.kind,
        subject: id,
        value: breakerValue(hashes[index] ?? {}, nowMs),
        threshold: 1,
        fireAbove: 0.5,
        resolveBelow: 0.5,
      }));
    }
    case "budget_used": {
      const budget = config.tenants.get(rule.tenant)?.config.budget;
      const { day, month } = await tenantSpend(redis, keys, rule.tenant, budgetPeriods(nowMs).dayDate);
      const fractions = [
        budget?.daily_usd ? day / budget.daily_usd : 0,
        budget?.monthly_usd ? month / budget.monthly_usd : 0,
      ];
      return [
        {
          id: name,
          rule: name,
          kind: rule.kind,
          subject: rule.tenant,
          value: Math.max(...fractions),
          threshold: rule.fire_above,
          fireAbove: rule.fire_above,
          resolveBelow: rule.resolve_below,
        },
      ];
    }
    case "queue_age": {
      const ageSeconds = (await oldestWaitingAgeMs(redis, keys, nowMs)) / 1000;
      return [
        {
          id: name,
          rule: name,
          kind: rule.kind,
          subject: "completions",
          value: ageSeconds,
          threshold: rule.fire_above_s,
          fireAbove: rule.fire_above_s,
          resolveBelow: rule.resolve_below_s,
        },
      ];
    }
  }
}

/**
 * What a tenant has spent today and this month (UTC), as its usage records hold it: the settled
 * costs of its calls, stray charges included. Not its budget keys, which also hold what calls in
 * flight have reserved (their estimate: `max_tokens` of output) and what processes hold on lease:
 * read there, one call with a large `max_tokens` fired the alert while it ran and resolved it when
 * it settled at a few cents.
 */
async function tenantSpend(
  redis: RedisClient,
  keys: Keys,
  tenant: string,
  today: string,
): Promise<{ day: number; month: number }> {
  const days = Array.from(
    { length: Number(today.slice(8, 10)) },
    (_, index) => `${today.slice(0, 8)}${String(index + 1).padStart(2, "0")}`,
  );
  const totals = await Promise.all(
    days.map((date) => redis.hget(keys.usage(tenant, date), USAGE_TOTAL_FIELD)),
  );
  const spent = totals.map((total) => Number(total ?? 0) || 0);
  return { day: spent.at(-1) ?? 0, month: spent.reduce((sum, each) => sum + each, 0) };
}

/** Reads every rule of the config at `nowMs` (Redis time). */
export async function measureRules(deps: MeasureDeps, nowMs: number): Promise<Measurement[]> {
  const rules = deps.config.file.alerts?.rules ?? [];
  const all = await Promise.all(rules.map((rule) => measureRule(deps, rule, nowMs)));
  return all.flat();
}
