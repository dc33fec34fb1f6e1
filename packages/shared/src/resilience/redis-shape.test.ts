import { describe, expect, it } from "vitest";
import { breakerId, createKeys, spendSubjectId } from "../redis/keys.js";
import { breakerFor } from "./breaker-config.js";
import {
  breakerHashSchema,
  bucketHashSchema,
  cooldownHashSchema,
  statsHashSchema,
  usageField,
} from "./redis-shape.js";

describe("breaker and spend subject ids", () => {
  it("name a breaker by its scope and id, as breakerFor resolves it", () => {
    expect(breakerId("provider", "openai")).toBe("provider:openai");
    const provider = { type: "simulated" as const };
    expect(breakerFor("sim", provider, "m", { provider: "sim" }).id).toBe(breakerId("provider", "sim"));
    expect(breakerFor("sim", provider, "m", { provider: "sim", breaker: { open_ms: 1 } }).id).toBe(
      breakerId("model", "m"),
    );
  });

  it("build the spend keys from the spend subject", () => {
    const keys = createKeys("cascade");
    const owner = { tenant: "a:b", user: "c%d" };
    expect(spendSubjectId(owner)).toBe("user:a%3Ab:c%25d");
    expect(keys.spend(owner, "d:2026-01-01")).toBe(`{cascade}:spend:${spendSubjectId(owner)}:d:2026-01-01`);
    expect(spendSubjectId({ tenant: "acme" })).toBe("tenant:acme");
  });

  it("name usage fields by subject", () => {
    expect(usageField("route", "default")).toBe("route:default");
  });
});

describe("the Redis hashes the API reads", () => {
  it("parse a breaker hash as the scripts write it", () => {
    const parsed = breakerHashSchema.parse({
      state: "open",
      open_until: "1764000015000",
      reopens: "2",
      probe_until: "0",
      changed_at: "1764000000000",
      log: JSON.stringify([{ at: 1764000000000, from: "closed", to: "open", why: "10 of 10 calls failed" }]),
    });
    expect(parsed).toEqual({
      state: "open",
      open_until: 1764000015000,
      reopens: 2,
      probe_until: 0,
      changed_at: 1764000000000,
      log: [{ at: 1764000000000, from: "closed", to: "open", why: "10 of 10 calls failed" }],
    });
    // A breaker never written is an empty hash: closed, no override.
    expect(breakerHashSchema.parse({})).toEqual({});
    expect(breakerHashSchema.parse({ forced: "open" }).forced).toBe("open");
  });

  it("refuse what the scripts never write", () => {
    expect(() => breakerHashSchema.parse({ state: "ajar" })).toThrow();
    expect(() => breakerHashSchema.parse({ open_until: "soon" })).toThrow();
    expect(() => breakerHashSchema.parse({ log: "{not json" })).toThrow();
    expect(() => breakerHashSchema.parse({ forced: "auto" })).toThrow();
  });

  it("parse cooldowns, buckets (negative and fractional tokens too) and stats", () => {
    expect(cooldownHashSchema.parse({ until: "1764000001000", streak: "3" })).toEqual({
      until: 1764000001000,
      streak: 3,
    });
    expect(bucketHashSchema.parse({ tokens: "-12.5", ts: "1764000000000" })).toEqual({
      tokens: -12.5,
      ts: 1764000000000,
    });
    expect(bucketHashSchema.parse({ tokens: "1.5e-05" }).tokens).toBe(0.000015);
    expect(statsHashSchema.parse({ "29400000:calls": "4" })).toEqual({ "29400000:calls": 4 });
  });
});
