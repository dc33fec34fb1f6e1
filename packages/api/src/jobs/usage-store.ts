import {
  type Keys,
  parseRequestCounts,
  type RedisClient,
  type RequestCountTable,
  USAGE_TOTAL_FIELD,
} from "@cascade/shared";

/** What a tenant spent over some days, summed by route, model and end user (USD). */
export interface UsageTotals {
  costUsd: number;
  byRoute: Record<string, number>;
  byModel: Record<string, number>;
  byUser: Record<string, number>;
  /** Pooled models' deployments, `<model>/<deployment>`. */
  byDeployment: Record<string, number>;
  daily: Array<{ date: string; cost_usd: number }>;
}

/** Rounds away the binary float noise that summing many small amounts leaves. */
function roundUsd(amount: number): number {
  return Math.round(amount * 1e10) / 1e10;
}

function addTo(target: Record<string, number>, name: string, amount: number) {
  target[name] = roundUsd((target[name] ?? 0) + amount);
}

/**
 * Reads the per-day usage hashes the shared budgets write as calls settle (`keys.usage`; fields
 * `total` and `<route|model|user>:<id>`), one pipeline for the whole period.
 */
export class UsageStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  async read(tenant: string, days: readonly string[]): Promise<UsageTotals> {
    const pipeline = this.redis.pipeline();
    for (const date of days) pipeline.hgetall(this.keys.usage(tenant, date));
    const replies = ((await pipeline.exec()) ?? []) as Array<[Error | null, Record<string, string>]>;
    const totals: UsageTotals = {
      costUsd: 0,
      byRoute: {},
      byModel: {},
      byUser: {},
      byDeployment: {},
      daily: [],
    };
    replies.forEach(([error, fields], index) => {
      if (error) throw error;
      let dayTotal = 0;
      for (const [field, value] of Object.entries(fields ?? {})) {
        const amount = Number(value);
        const [kind, ...rest] = field.split(":");
        const name = rest.join(":");
        if (kind === USAGE_TOTAL_FIELD) dayTotal += amount;
        else if (kind === "route") addTo(totals.byRoute, name, amount);
        else if (kind === "model") addTo(totals.byModel, name, amount);
        else if (kind === "user") addTo(totals.byUser, name, amount);
        else if (kind === "deployment") addTo(totals.byDeployment, name, amount);
      }
      totals.costUsd += dayTotal;
      totals.daily.push({ date: days[index] as string, cost_usd: roundUsd(dayTotal) });
    });
    totals.costUsd = roundUsd(totals.costUsd);
    return totals;
  }

  /**
   * The finished requests' counts of each day, in the order of `days` (`keys.requestCounts`,
   * written by the RequestCountRecorder as requests end), one pipeline for the whole period.
   */
  async readCounts(tenant: string, days: readonly string[]): Promise<RequestCountTable[]> {
    const pipeline = this.redis.pipeline();
    for (const date of days) pipeline.hgetall(this.keys.requestCounts(tenant, date));
    const replies = ((await pipeline.exec()) ?? []) as Array<[Error | null, Record<string, string>]>;
    return replies.map(([error, fields]) => {
      if (error) throw error;
      return parseRequestCounts(fields);
    });
  }
}
