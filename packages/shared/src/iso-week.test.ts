import { describe, expect, it } from "vitest";
import { isoWeek } from "./iso-week.js";

describe("isoWeek", () => {
  it.each([
    ["2026-12-03", "2026-W49"],
    ["2026-11-30", "2026-W49"],
    ["2026-12-06", "2026-W49"],
    ["2026-12-07", "2026-W50"],
    // 2026 starts on a Thursday: it has 53 weeks, and 2027's first Friday to Sunday belong to its last.
    ["2026-01-01", "2026-W01"],
    ["2026-12-31", "2026-W53"],
    ["2027-01-01", "2026-W53"],
    ["2027-01-03", "2026-W53"],
    ["2027-01-04", "2027-W01"],
    // A Sunday in January still in the previous year's week 53.
    ["2021-01-03", "2020-W53"],
    ["2021-01-04", "2021-W01"],
    // The last days of December in week 1 of the next year.
    ["2024-12-29", "2024-W52"],
    ["2024-12-30", "2025-W01"],
    ["2025-12-29", "2026-W01"],
    // Leap day.
    ["2024-02-29", "2024-W09"],
  ])("%s is %s", (day, week) => {
    expect(isoWeek(day)).toBe(week);
  });

  it("takes unix ms (UTC), whatever the hour", () => {
    expect(isoWeek(Date.parse("2027-01-03T23:59:59.999Z"))).toBe("2026-W53");
    expect(isoWeek(Date.parse("2027-01-04T00:00:00Z"))).toBe("2027-W01");
  });

  it("refuses what is not a date", () => {
    expect(() => isoWeek("2026-13-45")).toThrow(RangeError);
  });
});
