import { describe, expect, it } from "vitest";
import { newId } from "./ids.js";

describe("newId", () => {
  it("keeps its format: prefix, base-36 time, 16 base-36 characters", () => {
    const now = 1_764_000_000_000;
    const id = newId("job", now);
    expect(id).toMatch(new RegExp(`^job_${now.toString(36)}[0-9a-z]{16}$`));
  });

  it("gives distinct ids across many refills of its random pool", () => {
    const now = Date.now();
    const ids = new Set<string>();
    // 256 ids per 4,096-byte pool: this crosses ~80 refills.
    for (let index = 0; index < 20_000; index++) ids.add(newId("job", now));
    expect(ids.size).toBe(20_000);
  });

  it("uses every random character evenly enough (no byte reused, no constant tail)", () => {
    const counts = new Map<string, number>();
    for (let index = 0; index < 5_000; index++) {
      for (const character of newId("x", 0).slice("x_0".length)) {
        counts.set(character, (counts.get(character) ?? 0) + 1);
      }
    }
    expect(counts.size).toBe(36);
    // 80,000 characters over 36 symbols: ~2,222 each (bytes mod 36 favour the first 4 slightly).
    for (const count of counts.values()) expect(count).toBeGreaterThan(1_500);
  });
});
