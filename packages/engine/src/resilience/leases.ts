/** How long a lease of bucket tokens or budget may be used before what is left goes back. */
export const LEASE_MS = 250;
/** A budget lease covers about this many more calls like the one that took it. */
const BUDGET_LEASE_CALLS = 50;

/** One bucket or budget of a hop's plan that hands out leases, in the order admit.lua reports them. */
export interface LeaseSpec {
  key: string;
  kind: "rpm" | "tpm" | "budget";
  ttl_s: number;
  /** A bucket's lease size in tokens (budgets size theirs by the call, see `wants`). */
  slice: number;
}

/** What a call asks of the leases: its tpm tokens and its estimated cost. */
export interface LeaseNeed {
  tokens: number;
  costUsd: number;
}

interface Held {
  amount: number;
  expiresAt: number;
  kind: "bucket" | "budget";
  ttl_s: number;
}

/**
 * Bucket tokens and budget this worker took from Redis ahead of its calls (admit.lua hands them
 * out), so that most calls are admitted without a round trip. Taken tokens count as used in
 * Redis; budget is an advance: calls take their estimates from it, their real costs are credited
 * back as they settle, and when the lease ends its balance is written to the budget. A balance
 * below zero (calls that cost more than their estimates: CJK text, code, a missing max_tokens)
 * is written too, as an overrun: a lease may advance money, never lose any.
 */
export class Leases {
  private readonly held = new Map<string, Held>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    /** Writes a budget lease's balance back (positive: unused money; negative: an overrun). */
    private readonly giveBack: (key: string, balanceUsd: number, ttlSeconds: number) => void,
    private readonly clock: { now(): number },
  ) {}

  /** Admits a call from what this worker holds when it covers every lease; takes it if so. */
  take(leases: LeaseSpec[], need: LeaseNeed, nowMs: number): boolean {
    const amount = (kind: LeaseSpec["kind"]) =>
      kind === "rpm" ? 1 : kind === "tpm" ? need.tokens : need.costUsd;
    for (const lease of leases) {
      const held = this.held.get(lease.key);
      const wanted = amount(lease.kind);
      if (wanted > 0 && (!held || held.expiresAt <= nowMs || held.amount < wanted)) return false;
    }
    for (const lease of leases) {
      const held = this.held.get(lease.key);
      if (held) held.amount -= amount(lease.kind);
    }
    return true;
  }

  /** What to ask admit.lua for on top of this call: a full slice of each lease this worker is low on. */
  wants(leases: LeaseSpec[], need: LeaseNeed, nowMs: number): string {
    return leases
      .map((lease) => {
        const slice = lease.kind === "budget" ? need.costUsd * BUDGET_LEASE_CALLS : lease.slice;
        // A tpm lease smaller than one such request could never admit it: only hoard tokens.
        if (lease.kind === "tpm" && slice < need.tokens) return 0;
        const held = this.held.get(lease.key);
        const holding = held && held.expiresAt > nowMs ? held.amount : 0;
        return holding >= slice / 2 ? 0 : slice;
      })
      .join(",");
  }

  /** Adds what admit.lua handed out (its comma-separated lease reply). */
  add(leases: LeaseSpec[], reply: string, nowMs: number): void {
    const amounts = reply.split(",").map(Number);
    leases.forEach((lease, index) => {
      const amount = amounts[index] ?? 0;
      if (!(amount > 0)) return;
      const held = this.held.get(lease.key);
      if (held && held.expiresAt > nowMs) {
        held.amount += amount;
        held.expiresAt = nowMs + LEASE_MS;
        return;
      }
      if (held) this.release(lease.key, held);
      this.held.set(lease.key, {
        amount,
        expiresAt: nowMs + LEASE_MS,
        kind: lease.kind === "budget" ? "budget" : "bucket",
        ttl_s: lease.ttl_s,
      });
    });
    if (!this.sweepTimer && this.held.size > 0) {
      this.sweepTimer = setInterval(() => this.sweep(this.clock.now()), LEASE_MS);
      this.sweepTimer.unref();
    }
  }

  /**
   * Credits a settled call's difference (estimate − real cost, negative for an overrun) to a live
   * budget lease; false when this worker holds none for the key (write it to Redis instead).
   */
  credit(key: string, amount: number, nowMs: number): boolean {
    const held = this.held.get(key);
    if (!held || held.expiresAt <= nowMs) return false;
    held.amount += amount;
    return true;
  }

  /** Ends every lease (on shutdown). */
  releaseAll(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const [key, held] of this.held) this.release(key, held);
  }

  /** Ends a lease: its budget balance goes back, overruns included (unused bucket tokens are simply not used). */
  private release(key: string, held: Held): void {
    this.held.delete(key);
    if (held.kind === "budget" && Math.abs(held.amount) > 1e-12) this.giveBack(key, held.amount, held.ttl_s);
  }

  /** Ends every lease expired at `nowMs` (the timer's job; callable directly, so tests need no timers). */
  sweep(nowMs: number): void {
    for (const [key, held] of this.held) if (held.expiresAt <= nowMs) this.release(key, held);
  }
}
