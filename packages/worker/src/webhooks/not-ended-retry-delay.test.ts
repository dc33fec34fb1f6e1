import { describe, expect, it } from "vitest";
import { notEndedRetryDelay } from "./webhook-worker.js";

describe("notEndedRetryDelay", () => {
  it("waits about as long as the delivery has waited, 50 ms at least", () => {
    expect(notEndedRetryDelay(0)).toBe(50);
    expect(notEndedRetryDelay(800)).toBe(800);
  });

  it("looks again at most a lock duration later (a crashed run is recovered after its lock)", () => {
    expect(notEndedRetryDelay(120_000)).toBe(30_000);
    expect(notEndedRetryDelay(120_000, 5_000)).toBe(5_000);
    expect(notEndedRetryDelay(3_000, 5_000)).toBe(3_000);
  });
});
