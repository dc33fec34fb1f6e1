/**
 * Half-open probes close a breaker only on success (issue "Trust", item 6; decision in
 * docs/decisions/0013-charging-calls-that-end-badly.md). Driven through the Resilience class
 * against real Redis and the real admit.lua / settle.lua:
 *
 * - a success closes the breaker; a breaker failure re-opens it with the open time doubled;
 * - a 429, another 4xx or a content filter says nothing about the provider's health: the probe
 *   is handed back at once and the breaker stays half-open, so the next call probes again;
 * - an aborted probe (cancel, shutdown, lock loss) is handed back at once, instead of leaving
 *   the breaker half-open until the probe lease (timeout_ms + 5 s) runs out.
 */
import type { Reason } from "@cascade/shared";
import { afterEach, describe, expect, it } from "vitest";
import type { CallOutcome } from "../../packages/engine/src/resilience/resilience.js";
import { inlineConfig, type ResilienceHarness, startResilience } from "./resilience-class-helpers.js";

const OPEN_MS = 100;
const config = inlineConfig({
  providers: {
    p: {
      type: "simulated",
      breaker: { min_requests: 1, failure_threshold: 0.5, window_ms: 10_000, open_ms: OPEN_MS },
    },
  },
  models: { a: { provider: "p" } },
  routes: { default: { chain: [{ model: "a" }] } },
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let harness: ResilienceHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

/** Opens p's breaker with one failure, waits out open_ms and takes the probe. */
async function probeTicket(label: string) {
  harness = startResilience(config, label);
  const { resilience, hop } = harness;
  const first = await resilience.admit(hop("a"));
  if (!first.admitted) throw new Error("first call not admitted");
  await resilience.settle(first.ticket, { reason: "server_error" });
  expect((await harness.breaker("provider:p")).state).toBe("open");
  await sleep(OPEN_MS + 30);
  const probe = await resilience.admit(hop("a"));
  if (!probe.admitted) throw new Error(`probe not admitted: ${probe.reason} ${probe.detail}`);
  expect(probe.ticket.probe).toBe(true);
  expect((await harness.breaker("provider:p")).state).toBe("half_open");
  return { harness, ticket: probe.ticket };
}

describe("half-open probe outcomes", () => {
  it("a successful probe closes the breaker", async () => {
    const { harness, ticket } = await probeTicket("probe-ok");
    await harness.resilience.settle(ticket, { reason: undefined, promptTokens: 1, completionTokens: 1 });
    expect((await harness.breaker("provider:p")).state).toBe("closed");
  });

  it("tells the transition listener of every move: open, half_open (the probe's admission), closed", async () => {
    harness = startResilience(config, "probe-transitions");
    const { resilience, hop } = harness;
    const moves: string[] = [];
    resilience.onBreakerTransition((breaker, to) => moves.push(`${breaker}:${to}`));
    const first = await resilience.admit(hop("a"));
    if (!first.admitted) throw new Error("first call not admitted");
    await resilience.settle(first.ticket, { reason: "server_error" });
    await sleep(OPEN_MS + 30);
    const probe = await resilience.admit(hop("a"));
    if (!probe.admitted) throw new Error(`probe not admitted: ${probe.reason}`);
    // Handed back (a 4xx says nothing of health): the next probe is no new transition.
    await resilience.settle(probe.ticket, { reason: "bad_request" });
    const again = await resilience.admit(hop("a"));
    if (!again.admitted) throw new Error(`second probe not admitted: ${again.reason}`);
    await resilience.settle(again.ticket, { reason: undefined, promptTokens: 1, completionTokens: 1 });
    expect(moves).toEqual(["provider:p:open", "provider:p:half_open", "provider:p:closed"]);
  });

  it("a probe failing with a breaker failure re-opens it, the open time doubled", async () => {
    const { harness, ticket } = await probeTicket("probe-fail");
    const before = Date.now();
    await harness.resilience.settle(ticket, { reason: "server_error" });
    const breaker = await harness.breaker("provider:p");
    expect(breaker.state).toBe("open");
    expect(Number(breaker.reopens)).toBe(1);
    expect(Number(breaker.open_until) - before).toBeGreaterThanOrEqual(2 * OPEN_MS - 20);
  });

  const handedBack: Array<[string, CallOutcome]> = [
    ["rate_limited (429)", { reason: "rate_limited", retryAfterMs: 30 }],
    ["bad_request (4xx)", { reason: "bad_request" }],
    ["auth_error (401)", { reason: "auth_error" }],
    ["content_filter", { reason: "content_filter" as Reason, promptTokens: 5, completionTokens: 5 }],
    ["an aborted call (cancel, shutdown, lock loss)", { reason: undefined, aborted: true }],
  ];
  for (const [name, outcome] of handedBack) {
    it(`a probe ended by ${name} stays half-open and hands the probe to the next call at once`, async () => {
      const { harness, ticket } = await probeTicket(`probe-${name.split(" ")[0]}`);
      await harness.resilience.settle(ticket, outcome);
      const breaker = await harness.breaker("provider:p");
      expect(breaker.state).toBe("half_open");
      expect(Number(breaker.probe_until)).toBe(0);
      // A 429 cools the provider down for its Retry-After (30 ms); nothing else waits.
      if (outcome.reason === "rate_limited") await sleep(50);
      const next = await harness.resilience.admit(harness.hop("a"));
      expect(next.admitted ? "admitted" : `${next.reason}: ${next.detail}`).toBe("admitted");
      if (next.admitted) expect(next.ticket.probe).toBe(true);
    });
  }

  it("a probe handed back does not release another worker's probe taken after the lease ran out", async () => {
    const { harness, ticket } = await probeTicket("probe-stale");
    // The lease ran out (simulated by moving probe_until into the past) and another call probes.
    await harness.admin.hset(harness.keys.breaker("provider:p"), "probe_until", Date.now() - 1);
    const other = await harness.resilience.admit(harness.hop("a"));
    if (!other.admitted) throw new Error("the second probe was not admitted");
    expect(other.ticket.probe).toBe(true);
    await harness.resilience.settle(ticket, { reason: undefined, aborted: true });
    const next = await harness.resilience.admit(harness.hop("a"));
    expect(next.admitted ? "admitted" : next.reason).toBe("circuit_open");
  });
});
