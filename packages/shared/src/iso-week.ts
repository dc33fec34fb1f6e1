const DAY_MS = 86_400_000;

/**
 * The ISO 8601 week of a UTC date, as `YYYY-Www` (e.g. `2026-W49`). Weeks start on Monday, and
 * week 1 is the one holding the year's first Thursday, so the first days of January may belong
 * to the last week of the year before (2021-01-03 is `2020-W53`) and the last days of December
 * to week 1 of the next (2024-12-30 is `2025-W01`). `day` is a `YYYY-MM-DD` date or unix ms.
 */
export function isoWeek(day: string | number): string {
  const at = typeof day === "number" ? day : Date.parse(`${day}T00:00:00Z`);
  if (Number.isNaN(at)) throw new RangeError(`not a date: ${String(day)}`);
  const date = new Date(at);
  // Monday = 0 … Sunday = 6.
  const weekday = (date.getUTCDay() + 6) % 7;
  // The Thursday of this week decides the week's year.
  const thursday = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() - weekday + 3);
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) + 1;
  return `${year}-W${String(week).padStart(2, "0")}`;
}
