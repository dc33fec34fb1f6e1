/**
 * The pieces of pools and places in line, driven through the Resilience class on the run's real
 * Redis: admit.lua books rpm tokens ahead (each waiter its own slot, spaced by the refill), a
 * call holding its place is not asked for rpm again, and pool-state.lua reports each
 * deployment's headroom, blocking, calls in flight, latency and recent failures.
 */
import { afterEach, describe, expect, it } from "vitest";
import { targetsOf } from "../../packages/engine/src/pools/model-targets.js";
import { inlineConfig, type ResilienceHarness, startResilience } from "./resilience-class-helpers.js";

const config = inlineConfig({
  providers: { p: { type: "simulated" }, wide: { type: "simulated", limits: { rpm: 6000 } } },
  models: {
    plain: { provider: "p", limits: { rpm: 60 } },
    wide: { provider: "wide", limits: { rpm: 60 } },
    pooled: {
      deployments: [
        { id: "a", provider: "p", limits: { rpm: 60 } },
        { id: "b", provider: "p", limits: { rpm: 60 } },
      ],
    },
  },
  routes: { default: { chain: [{ model: "plain" }] } },
});

const opened: ResilienceHarness[] = [];
afterEach(async () => {
  for (const harness of opened.splice(0)) await harness.close();
});

function harness(label: string): ResilienceHarness {
  const started = startResilience(config, label);
  opened.push(started);
  return started;
}

describe("places in line (admit.lua reserve_ms)", () => {
  it("books each waiter its own slot, one refill apart, and never more than the bucket", async () => {
    const { resilience, hop } = harness("place-in-line");
    const request = hop("plain");
    const first = await resilience.admitOrLineUp(request, { reserveMs: 10_000 });
    expect(first.admitted).toBe(true);
    const waits: number[] = [];
    const places: Array<{ dueMs: number; booked: number[] }> = [];
    for (let index = 0; index < 5; index += 1) {
      const next = await resilience.admitOrLineUp(request, { reserveMs: 10_000 });
      expect(next.admitted).toBe("in_line");
      if (next.admitted === "in_line") {
        waits.push(next.waitMs);
        places.push({ dueMs: next.dueMs, booked: next.booked });
      }
    }
    // rpm 60: a token a second; the five waiters are booked ~1, 2, 3, 4, 5 s out.
    waits.forEach((wait, index) => {
      expect(wait).toBeGreaterThan((index + 1) * 1000 - 100);
      expect(wait).toBeLessThanOrEqual((index + 1) * 1000);
    });
    // A caller without a place is told to wait behind the line, not given a token.
    const plain = await resilience.admit(request);
    expect(plain.admitted).toBe(false);
    if (!plain.admitted) expect(plain.waitMs).toBeGreaterThan(5_000);
    // Past the reserve window: refused, as before.
    const far = await resilience.admitOrLineUp(request, { reserveMs: 2_000 });
    expect(far.admitted).toBe(false);
    // A holder called before its slot (a worker whose clock runs ahead) is told to wait on.
    const early = await resilience.admitOrLineUp(request, { held: places[0] as never });
    expect(early.admitted).toBe("in_line");
    if (early.admitted === "in_line") {
      expect(early.waitMs).toBeGreaterThan(0);
      expect(early.dueMs).toBe(places[0]?.dueMs);
    }
    // At its slot it is admitted without asking rpm again.
    await new Promise((resolve) =>
      setTimeout(resolve, (early.admitted === "in_line" ? early.waitMs : 0) + 5),
    );
    const held = await resilience.admitOrLineUp(request, { held: places[0] as never });
    expect(held.admitted).toBe(true);
  });
});

describe("places in line: what is booked", () => {
  it("books only the short bucket; the others are asked when the call is due", async () => {
    const { resilience, hop, keys, admin } = harness("place-short-only");
    const request = hop("wide");
    expect((await resilience.admitOrLineUp(request, { reserveMs: 10_000 })).admitted).toBe(true);
    const providerBucket = keys.bucket("provider", "wide", "rpm");
    const before = Number(await admin.hget(providerBucket, "tokens"));
    const place = await resilience.admitOrLineUp(request, { reserveMs: 10_000 });
    expect(place.admitted).toBe("in_line");
    if (place.admitted === "in_line") expect(place.booked).toHaveLength(1);
    // The provider's roomy bucket gave nothing for a call a second away.
    expect(Number(await admin.hget(providerBucket, "tokens"))).toBe(before);
  });

  it("a booked call later than the bucket's burst covers asks for a token again (no bunching)", async () => {
    const { resilience, hop } = harness("place-late");
    const request = hop("plain");
    expect((await resilience.admitOrLineUp(request, { reserveMs: 10_000 })).admitted).toBe(true);
    const first = await resilience.admitOrLineUp(request, { reserveMs: 10_000 });
    const second = await resilience.admitOrLineUp(request, { reserveMs: 10_000 });
    if (first.admitted !== "in_line" || second.admitted !== "in_line") throw new Error("no places");
    // The first holder stalls 1.2 s past its slot (rpm 60, burst 1: one token a second).
    await new Promise((resolve) => setTimeout(resolve, first.waitMs + 1_200));
    const late = await resilience.admitOrLineUp(request, { held: first });
    expect(late.admitted).toBe(false);
    // The second, on time, still has its slot.
    const onTime = await resilience.admitOrLineUp(request, { held: second });
    expect(onTime.admitted).toBe(true);
  });

  it("a probe that is due may be booked, and the holder takes the probe at its slot", async () => {
    const { resilience, hop, keys, admin } = harness("place-probe");
    const request = hop("plain");
    expect((await resilience.admitOrLineUp(request, { reserveMs: 10_000 })).admitted).toBe(true);
    await admin.hset(keys.breaker("provider:p"), "state", "open", "open_until", "1");
    const place = await resilience.admitOrLineUp(request, { reserveMs: 10_000 });
    expect(place.admitted).toBe("in_line");
    if (place.admitted !== "in_line") return;
    await new Promise((resolve) => setTimeout(resolve, place.waitMs + 5));
    const probe = await resilience.admitOrLineUp(request, { held: place });
    expect(probe.admitted).toBe(true);
    if (probe.admitted === true) expect(probe.ticket.probe).toBe(true);
    expect(await admin.hget(keys.breaker("provider:p"), "state")).toBe("half_open");
  });
});

describe("pool-state.lua", () => {
  it("reports headroom, blocking, in-flight calls and latency per deployment", async () => {
    const { resilience, hop, keys, admin } = harness("pool-state");
    const model = config.file.models.pooled;
    if (!model) throw new Error("no pooled model");
    const targets = targetsOf("pooled", model);
    const requests = targets.map((target) =>
      hop("pooled", {
        providerId: target.providerId,
        ...(target.deployment ? { deployment: target.deployment } : {}),
      }),
    );
    const fresh = await resilience.pools.state(requests, "most_headroom");
    expect(fresh.map((state) => state.headroom)).toEqual([1, 1]);
    expect(fresh.map((state) => state.blocked)).toEqual([false, false]);
    // Deployment a uses its token and books one more: its headroom goes below zero.
    expect((await resilience.admitOrLineUp(requests[0] as never, { reserveMs: 5_000 })).admitted).toBe(true);
    expect((await resilience.admitOrLineUp(requests[0] as never, { reserveMs: 5_000 })).admitted).toBe(
      "in_line",
    );
    const used = await resilience.pools.state(requests, "most_headroom");
    expect(used[0]?.headroom).toBeLessThan(0);
    expect(used[0]?.waitMs).toBeGreaterThan(1_000);
    expect(used[1]?.headroom).toBe(1);
    // A cooldown on b blocks b only.
    await admin.hset(keys.cooldown("deployment", "pooled/b"), "until", Date.now() + 60_000);
    const cooling = await resilience.pools.state(requests, "least_busy");
    expect(cooling.map((state) => state.blocked)).toEqual([false, true]);
    // In-flight calls (least_busy) and latency (lowest_latency).
    resilience.pools.callStarted("pooled/a", "call-1", 10_000);
    resilience.pools.callStarted("pooled/a", "call-2", 10_000);
    resilience.pools.callEnded("pooled/a", "call-2");
    resilience.pools.latency("pooled", "pooled/b", 400);
    resilience.pools.latency("pooled", "pooled/b", 100);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const busy = await resilience.pools.state(requests, "least_busy");
    expect(busy.map((state) => state.inFlight)).toEqual([1, 0]);
    const timed = await resilience.pools.state(requests, "lowest_latency");
    expect(timed[0]?.latencyMs).toBeUndefined();
    expect(timed[1]?.latencyMs).toBe(340);
    expect(timed.map((state) => state.failedRecently)).toEqual([false, false]);
  });

  it("remembers a deployment's failure for lowest_latency until it answers again or 30 s pass", async () => {
    const { resilience, hop, keys, admin } = harness("pool-failures");
    const model = config.file.models.pooled;
    if (!model) throw new Error("no pooled model");
    const requests = targetsOf("pooled", model).map((target) =>
      hop("pooled", {
        providerId: target.providerId,
        ...(target.deployment ? { deployment: target.deployment } : {}),
      }),
    );
    const settle = () => new Promise((resolve) => setTimeout(resolve, 100));
    const failed = async () =>
      (await resilience.pools.state(requests, "lowest_latency")).map((state) => state.failedRecently);
    resilience.pools.failed("pooled", "pooled/a");
    await settle();
    expect(await failed()).toEqual([true, false]);
    // Other strategies do not read it.
    const headroom = await resilience.pools.state(requests, "most_headroom");
    expect(headroom.map((state) => state.failedRecently)).toEqual([false, false]);
    // A success forgets it.
    resilience.pools.latency("pooled", "pooled/a", 50);
    await settle();
    expect(await failed()).toEqual([false, false]);
    // So does time: a failure stamped 31 s ago (Redis time) is no longer recent.
    resilience.pools.failed("pooled", "pooled/b");
    await settle();
    expect(await failed()).toEqual([false, true]);
    const stamped = Number(await admin.hget(keys.poolFailures("pooled"), "pooled/b"));
    await admin.hset(keys.poolFailures("pooled"), "pooled/b", stamped - 31_000);
    expect(await failed()).toEqual([false, false]);
  });
});
