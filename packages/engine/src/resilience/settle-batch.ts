/**
 * Settlements gathered for a few milliseconds and written in one script call: tpm refunds, budget
 * corrections, spend records and in-process call counts of every call (successes, failures and
 * abandoned calls alike; breakers and cooldowns are settled apart, at once). Nothing here must be
 * seen by another worker within milliseconds, and none of it may be lost: see SettleQueue.
 */
export class SettleBatch {
  private readonly keys: string[] = [];
  private readonly index = new Map<string, number>();
  readonly buckets = new Map<number, { rate: number; capacity: number; refund: number }>();
  readonly budgets = new Map<number, { delta: number; ttl_s: number }>();
  readonly usages = new Map<number, { fields: Map<string, number>; ttl_s: number }>();
  readonly windows = new Map<number, { window_ms: number; count: number }>();
  readonly calls = new Map<number, number>();
  /**
   * Journaled calls (call-journal.ts): each call's usage, its entry removed with it; a call a
   * recovery already charged its estimate (its entry a tombstone) is brought to its real cost.
   */
  journal: { key: number; calls: Array<Array<string | number>> } | undefined;
  size = 0;

  key(name: string): number {
    let position = this.index.get(name);
    if (position === undefined) {
      this.keys.push(name);
      position = this.keys.length;
      this.index.set(name, position);
    }
    return position;
  }

  refund(key: string, rate: number, capacity: number, amount: number): void {
    if (!Number.isFinite(amount)) throw new TypeError(`tpm refund for ${key} is not a number: ${amount}`);
    const index = this.key(key);
    const entry = this.buckets.get(index) ?? { rate, capacity, refund: 0 };
    entry.refund += amount;
    this.buckets.set(index, entry);
    this.size += 1;
  }

  correctBudget(key: string, delta: number, ttlSeconds: number): void {
    if (!Number.isFinite(delta))
      throw new TypeError(`budget correction for ${key} is not a number: ${delta}`);
    const index = this.key(key);
    const entry = this.budgets.get(index) ?? { delta: 0, ttl_s: ttlSeconds };
    entry.delta += delta;
    this.budgets.set(index, entry);
    this.size += 1;
  }

  recordUsage(key: string, fields: Record<string, number>, ttlSeconds: number): void {
    const index = this.key(key);
    const entry = this.usages.get(index) ?? { fields: new Map<string, number>(), ttl_s: ttlSeconds };
    for (const [field, amount] of Object.entries(fields)) {
      // A NaN would become JSON null and fail the whole batch's script in Redis: refuse it here,
      // where the stack names the caller.
      if (!Number.isFinite(amount))
        throw new TypeError(`usage ${field} for ${key} is not a number: ${amount}`);
    }
    for (const [field, amount] of Object.entries(fields))
      entry.fields.set(field, (entry.fields.get(field) ?? 0) + amount);
    this.usages.set(index, entry);
    this.size += 1;
  }

  /**
   * A journaled call's usage: `cost` on each of `fields` of `usageKey`, its entry in `journalKey`
   * removed; where a recovery had charged it `estimate` already, only the difference.
   */
  journaledUsage(
    journalKey: string,
    entry: string,
    usage: { key: string; cost: number; estimate: number; ttlSeconds: number; fields: readonly string[] },
  ): void {
    const { key, cost, estimate, ttlSeconds, fields } = usage;
    if (!Number.isFinite(cost)) throw new TypeError(`usage for ${key} is not a number: ${cost}`);
    this.journalOf(journalKey).calls.push([entry, this.key(key), cost, ttlSeconds, estimate, ...fields]);
    this.size += 1;
  }

  private journalOf(journalKey: string) {
    if (!this.journal) this.journal = { key: this.key(journalKey), calls: [] };
    return this.journal;
  }

  countCall(windowKey: string, windowMs: number, statsKeys: string[]): void {
    const index = this.key(windowKey);
    const entry = this.windows.get(index) ?? { window_ms: windowMs, count: 0 };
    entry.count += 1;
    this.windows.set(index, entry);
    for (const stats of statsKeys) {
      const position = this.key(stats);
      this.calls.set(position, (this.calls.get(position) ?? 0) + 1);
    }
    this.size += 1;
  }

  /**
   * The keys and settle.lua spec for everything gathered; `ledger` names the writer's ledger key
   * and this batch's sequence number, so that settle.lua applies a batch sent twice only once.
   */
  toScript(ledger: { key: string; sequence: number }): { keys: string[]; spec: string } {
    const spec = {
      ledger: { key: this.key(ledger.key), sequence: ledger.sequence },
      failure: false,
      breakers: [],
      cooldown: null,
      buckets: [...this.buckets].map(([key, entry]) => ({ key, ...entry })),
      budgets: [...this.budgets].map(([key, entry]) => ({ key, ...entry })),
      usages: [...this.usages].map(([key, entry]) => ({
        key,
        fields: Object.fromEntries(entry.fields),
        ttl_s: entry.ttl_s,
      })),
      windows: [...this.windows].map(([key, entry]) => ({ key, ...entry })),
      calls: [...this.calls].map(([key, count]) => ({ key, count })),
      stats: [],
      ...(this.journal ? { journal: this.journal } : {}),
    };
    return { keys: this.keys, spec: JSON.stringify(spec) };
  }

  /** The money in this batch, for the log line of a batch given up on. */
  summary(): { budget_usd: Record<string, number>; usage_usd: Record<string, number> } {
    const budget: Record<string, number> = {};
    for (const [index, entry] of this.budgets) budget[this.keys[index - 1] as string] = entry.delta;
    const usage: Record<string, number> = {};
    for (const [index, entry] of this.usages)
      usage[this.keys[index - 1] as string] = entry.fields.get("total") ?? 0;
    for (const [, index, cost] of this.journal?.calls ?? []) {
      const key = this.keys[(index as number) - 1] as string;
      usage[key] = (usage[key] ?? 0) + (cost as number);
    }
    return { budget_usd: budget, usage_usd: usage };
  }
}
