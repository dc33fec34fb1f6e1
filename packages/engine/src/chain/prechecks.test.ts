/**
 * The max_cost_usd skips' messages: the amounts as a person writes them, not a float's noise (a
 * probe read "remaining max_cost_usd $0.000049999999999999914" after $0.0015 of $0.00155).
 */
import { describe, expect, it } from "vitest";
import { remainingCostSkip } from "./prechecks.js";

const model = {
  provider: "p",
  name: "m",
  price: { input_per_mtok: 2.5, output_per_mtok: 10 },
  capabilities: [],
} as unknown as Parameters<typeof remainingCostSkip>[0];

describe("remainingCostSkip", () => {
  it("names the estimate and what is left without float noise", () => {
    const skip = remainingCostSkip(
      model,
      { promptTokens: 29, maxTokens: 10 },
      { max_cost_usd: 0.00155 },
      0.0015,
    );
    expect(skip?.reason).toBe("price_ceiling");
    expect(skip?.message).toBe("estimated $0.0001725 exceeds the job's remaining max_cost_usd $0.00005");
  });
});
