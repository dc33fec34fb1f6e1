/**
 * Budget periods in UTC: days and months start at 00:00 UTC (contract, tenants.budget). They are
 * taken from the worker's clock: a boundary off by the clock skew between machines (milliseconds
 * with NTP) only moves which day a call at midnight is billed to.
 */
export function budgetPeriods(nowMs: number) {
  const date = new Date(nowMs);
  const dayDate = date.toISOString().slice(0, 10);
  const month = dayDate.slice(0, 7);
  return {
    dayDate,
    day: `d:${dayDate}`,
    month: `m:${month}`,
    dayTtlSeconds: 3 * 86_400,
    monthTtlSeconds: 40 * 86_400,
  };
}
