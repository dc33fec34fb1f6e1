import { describe, expect, it } from "vitest";
import { LEASE_MS, type LeaseSpec, Leases } from "./leases.js";

const rpm: LeaseSpec = { key: "{t}:bucket:provider:p:rpm", kind: "rpm", ttl_s: 0, slice: 10 };
const tpm: LeaseSpec = { key: "{t}:bucket:provider:p:tpm", kind: "tpm", ttl_s: 0, slice: 1_000 };
const budget: LeaseSpec = {
  key: "{t}:spend:tenant:a:d:2026-01-01",
  kind: "budget",
  ttl_s: 259_200,
  slice: 0,
};
const need = { tokens: 100, costUsd: 0.01 };

/** Leases with a clock the test moves and a record of every budget balance given back. */
function leasesAt(startMs = 1_000_000) {
  const clock = { nowMs: startMs, now: () => clock.nowMs };
  const givenBack: Array<{ key: string; balanceUsd: number; ttlSeconds: number }> = [];
  const leases = new Leases(
    (key, balanceUsd, ttlSeconds) => givenBack.push({ key, balanceUsd, ttlSeconds }),
    clock,
  );
  return { leases, clock, givenBack };
}

describe("Leases", () => {
  it("admits nothing before admit.lua handed anything out", () => {
    const { leases, clock } = leasesAt();
    expect(leases.take([rpm], need, clock.nowMs)).toBe(false);
    leases.releaseAll();
  });

  it("admits from held tokens until one lease runs short, taking from none on a refusal", () => {
    const { leases, clock } = leasesAt();
    leases.add([rpm, tpm], "2,250", clock.nowMs);
    expect(leases.take([rpm, tpm], need, clock.nowMs)).toBe(true);
    expect(leases.take([rpm, tpm], need, clock.nowMs)).toBe(true);
    // 50 tpm tokens are left but no rpm token: refused, and the tpm lease keeps its 50.
    expect(leases.take([rpm, tpm], { tokens: 50, costUsd: 0 }, clock.nowMs)).toBe(false);
    leases.add([rpm, tpm], "1,0", clock.nowMs);
    expect(leases.take([rpm, tpm], { tokens: 50, costUsd: 0 }, clock.nowMs)).toBe(true);
    expect(leases.take([rpm, tpm], { tokens: 1, costUsd: 0 }, clock.nowMs)).toBe(false);
    leases.releaseAll();
  });

  it("admits nothing from an expired lease", () => {
    const { leases, clock } = leasesAt();
    leases.add([rpm], "5", clock.nowMs);
    expect(leases.take([rpm], need, clock.nowMs + LEASE_MS - 1)).toBe(true);
    expect(leases.take([rpm], need, clock.nowMs + LEASE_MS)).toBe(false);
    leases.releaseAll();
  });

  it("asks for a full slice only when holding less than half of one", () => {
    const { leases, clock } = leasesAt();
    // Budget slices are sized by the call: 50 such calls.
    expect(leases.wants([rpm, tpm, budget], need, clock.nowMs)).toBe("10,1000,0.5");
    leases.add([rpm], "6", clock.nowMs);
    expect(leases.wants([rpm], need, clock.nowMs)).toBe("0");
    leases.take([rpm], need, clock.nowMs);
    leases.take([rpm], need, clock.nowMs);
    expect(leases.wants([rpm], need, clock.nowMs)).toBe("10");
    // A tpm slice smaller than the request could never admit it: no lease is asked for.
    expect(leases.wants([tpm], { tokens: 5_000, costUsd: 0 }, clock.nowMs)).toBe("0");
    leases.releaseAll();
  });

  it("credits settled differences to a live budget lease and gives its balance back when swept", () => {
    const { leases, clock, givenBack } = leasesAt();
    leases.add([budget], "0.5", clock.nowMs);
    expect(leases.take([budget], need, clock.nowMs)).toBe(true);
    // The call cost 0.004 instead of its estimated 0.01: 0.006 comes back to the lease.
    expect(leases.credit(budget.key, 0.006, clock.nowMs)).toBe(true);
    leases.sweep(clock.nowMs + LEASE_MS - 1);
    expect(givenBack).toEqual([]);
    leases.sweep(clock.nowMs + LEASE_MS);
    expect(givenBack).toHaveLength(1);
    expect(givenBack[0]?.key).toBe(budget.key);
    expect(givenBack[0]?.balanceUsd).toBeCloseTo(0.496, 10);
    expect(givenBack[0]?.ttlSeconds).toBe(budget.ttl_s);
    // Gone: a later credit goes to Redis instead.
    expect(leases.credit(budget.key, 0.001, clock.nowMs)).toBe(false);
    leases.releaseAll();
  });

  it("gives back an overrun (a negative balance) too: a lease may advance money, never lose any", () => {
    const { leases, clock, givenBack } = leasesAt();
    leases.add([budget], "0.02", clock.nowMs);
    expect(leases.take([budget], need, clock.nowMs)).toBe(true);
    expect(leases.credit(budget.key, -0.03, clock.nowMs)).toBe(true);
    leases.releaseAll();
    expect(givenBack).toHaveLength(1);
    expect(givenBack[0]?.balanceUsd).toBeCloseTo(-0.02, 10);
  });

  it("gives back nothing for bucket tokens (unused tokens are simply not used)", () => {
    const { leases, clock, givenBack } = leasesAt();
    leases.add([rpm, tpm], "5,500", clock.nowMs);
    leases.sweep(clock.nowMs + LEASE_MS);
    expect(givenBack).toEqual([]);
    expect(leases.take([rpm], need, clock.nowMs)).toBe(false);
  });

  it("ends an expired lease before adding a fresh one, so its balance is not lost", () => {
    const { leases, clock, givenBack } = leasesAt();
    leases.add([budget], "0.3", clock.nowMs);
    leases.add([budget], "0.2", clock.nowMs + LEASE_MS);
    expect(givenBack).toHaveLength(1);
    expect(givenBack[0]?.balanceUsd).toBeCloseTo(0.3, 10);
    leases.releaseAll();
    expect(givenBack[1]?.balanceUsd).toBeCloseTo(0.2, 10);
  });
});
