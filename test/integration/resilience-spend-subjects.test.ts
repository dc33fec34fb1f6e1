/**
 * Spend subjects cannot collide across tenants (issue "Trust", item 7). Tenant ids may hold `:`
 * and end-user ids anything, so tenant `a` + user `b:c` and tenant `a:b` + user `c` once shared
 * one spend key: one user's spending used up the other's budget. Driven through the Resilience
 * class against real Redis and admit.lua.
 */
import { afterAll, describe, expect, it } from "vitest";
import { inlineConfig, noKeyHash, startResilience } from "./resilience-class-helpers.js";

const config = inlineConfig({
  providers: { p: { type: "simulated" } },
  models: { m: { provider: "p", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
  routes: { default: { chain: [{ model: "m" }] } },
  tenants: {
    a: { api_key_sha256: [noKeyHash(1)], user_budget: { daily_usd: 1 } },
    "a:b": { api_key_sha256: [noKeyHash(2)], user_budget: { daily_usd: 1 } },
  },
});
const harness = startResilience(config, "subjects");
afterAll(() => harness.close());

describe("spend subjects", () => {
  it("tenant a's user b:c and tenant a:b's user c each have their own budget", async () => {
    const call = (tenant: string, user: string) =>
      harness.resilience.admit(harness.hop("m", { tenant, user, tokens: 600, costUsd: 0.6 }));
    const first = await call("a", "b:c");
    expect(first.admitted).toBe(true);
    if (first.admitted) {
      await harness.resilience.settle(first.ticket, {
        reason: undefined,
        promptTokens: 100,
        completionTokens: 500,
        costUsd: 0.6,
      });
    }
    await harness.resilience.flush();
    // $0.60 of a's user b:c's $1 is spent; a:b's user c has spent nothing and may spend $0.60.
    const second = await call("a:b", "c");
    expect(second.admitted ? "admitted" : `${second.reason} ${second.detail}`).toBe("admitted");
    const day = `d:${new Date().toISOString().slice(0, 10)}`;
    const spentByBc = Number(await harness.admin.get(harness.keys.spend({ tenant: "a", user: "b:c" }, day)));
    const spentByC = Number(await harness.admin.get(harness.keys.spend({ tenant: "a:b", user: "c" }, day)));
    expect(spentByBc).toBeCloseTo(0.6, 9);
    expect(spentByC).toBeCloseTo(0.6, 9); // reserved by the admission above
  });
});
