import { describe, expect, it } from "vitest";
import { createKeys } from "./keys.js";

const keys = createKeys("cascade");
const day = "d:2026-01-01";

describe("spend and usage keys", () => {
  it("give tenant `a` + user `b:c` and tenant `a:b` + user `c` different spend keys", () => {
    const first = keys.spend({ tenant: "a", user: "b:c" }, day);
    const second = keys.spend({ tenant: "a:b", user: "c" }, day);
    expect(first).not.toBe(second);
  });

  it("keep a tenant's own spend apart from any of its users' and from other tenants'", () => {
    const owners = [
      { tenant: "a" },
      { tenant: "a", user: "" },
      { tenant: "a", user: "a" },
      { tenant: "a:a" },
      { tenant: "user:a" },
      { tenant: "a", user: "%3A" },
      { tenant: "a", user: ":" },
    ];
    const built = owners.map((owner) => keys.spend(owner, day));
    expect(new Set(built).size).toBe(owners.length);
  });

  it("leave plain ids readable (dashboards and scripts grep these keys)", () => {
    expect(keys.spend({ tenant: "acme" }, day)).toBe("{cascade}:spend:tenant:acme:d:2026-01-01");
    expect(keys.spend({ tenant: "acme", user: "u-1" }, day)).toBe(
      "{cascade}:spend:user:acme:u-1:d:2026-01-01",
    );
    expect(keys.usage("acme", "2026-01-01")).toBe("{cascade}:usage:acme:2026-01-01");
    // End-user ids are often emails: their budgets must not move to a new key on upgrade.
    expect(keys.spend({ tenant: "acme", user: "bob@x.com" }, day)).toBe(
      "{cascade}:spend:user:acme:bob@x.com:d:2026-01-01",
    );
  });

  it("give no tenant's usage key the prefix of another's (a scan of `usage:a:*` finds only a's)", () => {
    expect(keys.usage("a:b", "2026-01-01").startsWith(`${keys.bullPrefix}:usage:a:`)).toBe(false);
  });
});
