/**
 * A tpm bucket holds one second of tokens by default (as rpm's default burst): a call reserving
 * more (its prompt + max_tokens) waits for a full bucket and runs it into debt, so calls that
 * each reserve more than a second's tokens go one at a time until they settle. `tpm_burst` (a
 * Cascade addition) sizes the bucket: with a minute's worth, a dozen such calls start at once.
 * Driven through the Resilience class on the run's real Redis.
 */
import { afterEach, describe, expect, it } from "vitest";
import { inlineConfig, type ResilienceHarness, startResilience } from "./resilience-class-helpers.js";

const configWith = (limits: Record<string, number>) =>
  inlineConfig({
    providers: { p: { type: "simulated", limits } },
    models: { a: { provider: "p" } },
    routes: { default: { chain: [{ model: "a" }] } },
  });

const opened: ResilienceHarness[] = [];
afterEach(async () => {
  for (const harness of opened.splice(0)) await harness.close();
});

async function admittedAtOnce(limits: Record<string, number>, label: string): Promise<number> {
  const harness = startResilience(configWith(limits), label);
  opened.push(harness);
  let admitted = 0;
  for (let call = 0; call < 12; call++) {
    const admission = await harness.resilience.admit(harness.hop("a", { tokens: 514 }));
    if (admission.admitted) admitted += 1;
  }
  return admitted;
}

describe("tpm_burst", () => {
  it("by default, one call reserving more than a second's tokens at a time", async () => {
    expect(await admittedAtOnce({ tpm: 6000 }, "tpm-default")).toBe(1);
  });

  it("with a minute's worth, as many as the minute holds", async () => {
    expect(await admittedAtOnce({ tpm: 6000, tpm_burst: 6000 }, "tpm-burst")).toBe(11);
  });

  it("is refused without tpm, naming the setting", () => {
    expect(() => configWith({ rpm: 10, tpm_burst: 500 })).toThrow(/tpm_burst/);
  });
});
