/**
 * A 429 without a wait of its own cools its provider down 1 s, doubling on consecutive 429s up
 * to 60 s (contract, Semantics → Cooldowns). Consecutive: a success in between starts the next
 * one at 1 s again. The streak used to be forgotten only a minute after a cooldown ended, so a
 * provider answering 429, ok, 429, ok… cooled down 1, 2, 4, 8… s, every worker waiting.
 * Driven through the Resilience class on the run's real Redis.
 */
import { afterEach, describe, expect, it } from "vitest";
import { inlineConfig, type ResilienceHarness, startResilience } from "./resilience-class-helpers.js";

const config = inlineConfig({
  providers: { p: { type: "simulated" } },
  models: { a: { provider: "p" } },
  routes: { default: { chain: [{ model: "a" }] } },
});

const opened: ResilienceHarness[] = [];
afterEach(async () => {
  for (const harness of opened.splice(0)) await harness.close();
});

async function call(harness: ResilienceHarness, outcome: "ok" | "429"): Promise<void> {
  const admission = await harness.resilience.admit(harness.hop("a"));
  if (!admission.admitted) throw new Error(`not admitted: ${JSON.stringify(admission)}`);
  await harness.resilience.settle(admission.ticket, outcome === "ok" ? {} : { reason: "rate_limited" });
}

/** The cooldown's length from now, and its streak; then lets it end (as if its time had passed). */
async function cooldown(harness: ResilienceHarness): Promise<{ ms: number; streak: number }> {
  const key = harness.keys.cooldown("provider", "p");
  const [until, streak] = await harness.admin.hmget(key, "until", "streak");
  const [seconds, micros] = await harness.admin.time();
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  await harness.admin.hset(key, "until", now - 1);
  return { ms: Number(until) - now, streak: Number(streak) };
}

describe("429 cooldown streak", () => {
  it("doubles on consecutive 429s", async () => {
    const harness = startResilience(config, "streak-consecutive");
    opened.push(harness);
    await call(harness, "429");
    expect(await cooldown(harness)).toMatchObject({ streak: 1 });
    await call(harness, "429");
    const second = await cooldown(harness);
    expect(second.streak).toBe(2);
    expect(second.ms).toBeGreaterThan(1_500);
  });

  it("starts again at 1 s after a success in between", async () => {
    const harness = startResilience(config, "streak-reset");
    opened.push(harness);
    for (let round = 0; round < 3; round++) {
      await call(harness, "429");
      const cooled = await cooldown(harness);
      expect(cooled.streak, `round ${round}`).toBe(1);
      expect(cooled.ms, `round ${round}`).toBeLessThanOrEqual(1_000);
      await call(harness, "ok");
    }
  });
});
