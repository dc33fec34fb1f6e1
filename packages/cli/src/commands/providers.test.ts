import { describe, expect, it } from "vitest";
import { createColors } from "../colors.js";
import type { ProviderStatus } from "../types.js";
import { renderProviders } from "./providers.js";

describe("renderProviders", () => {
  it("shows a model's own 429 cooldown in its COOLDOWN cell, and none for a model without one", () => {
    const nowMs = Date.UTC(2026, 11, 6, 12, 0, 0);
    const providers: ProviderStatus[] = [
      {
        id: "p1",
        type: "openai",
        cooldown_until: null,
        limits: [],
        models: [
          { id: "limited", cooldown_until: nowMs / 1000 + 30, limits: [] },
          { id: "plain", limits: [] },
        ],
      },
    ];
    const lines = renderProviders(providers, createColors(false), nowMs).split("\n");
    const header = lines[0] ?? "";
    const column = header.indexOf("COOLDOWN");
    const cell = (prefix: string) =>
      (lines.find((line) => line.startsWith(prefix)) ?? "").slice(column).split(/\s{2,}/)[0];
    expect(cell("  limited")).toBe("30.0 s");
    expect(cell("p1 ")).toBe("-");
    expect(cell("  plain")?.trim() ?? "").not.toMatch(/\d/);
  });
});
