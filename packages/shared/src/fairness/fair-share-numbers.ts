/**
 * The numbers of fair share (docs/decisions/0019-fair-share-on-bullmq-priorities.md). Tags are
 * in units where a weight-1 tenant's jobs are `tagUnit` apart; a weight-w tenant's are
 * tagUnit / w apart, a fraction the tenant's clock keeps (BullMQ's priority is its floor).
 */
export const FAIR_UNITS = {
  /** Tag distance between two jobs of a weight-1 tenant; a tenant's step is tagUnit / weight. */
  tagUnit: 12,
  /**
   * BullMQ priority added per step of a job's own priority (1 most urgent, 10 least): a priority
   * p + 1 job waits behind at most gap / tagUnit = 1,000 rounds of priority-p work that arrives
   * after it, a priority-10 job behind at most 9,000 rounds of priority-1 work. That is the aging.
   */
  gap: 12_000,
  /** The largest priority BullMQ accepts (its PRIORITY_LIMIT, 2^21 − 1: it refuses 2^21). */
  limit: 2_097_151,
  /** When the virtual clock reaches this, every priority is shifted down (rebase). */
  rebaseAt: 1_000_000,
  /** BullMQ's prioritized score: priority × 2^32 + a counter. */
  scoreStep: 4_294_967_296,
} as const;

/**
 * A tenant's tag step from its `weight` (default 1): tagUnit / weight, not rounded (a step rounded
 * up to a whole unit gave weight 11 the share of 6, and 100 that of 12).
 */
export function fairStep(weight: number | undefined): number {
  return FAIR_UNITS.tagUnit / Math.max(1, weight ?? 1);
}
