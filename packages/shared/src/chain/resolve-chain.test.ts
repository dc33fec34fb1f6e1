import { describe, expect, it } from "vitest";
import { parseConfigFile } from "../config/load.js";
import { ChainResolutionError, resolveChain } from "./resolve-chain.js";

const config = parseConfigFile(
  {
    providers: { sim: { type: "simulated" } },
    models: { a: { provider: "sim" }, b: { provider: "sim" }, c: { provider: "sim" } },
    routes: {
      default: { chain: [{ model: "c" }] },
      summaries: {
        deadline_ms: 5000,
        on_bad_request: "fallback",
        chain: [{ model: "a", max_retries: 2 }, { model: "b" }],
      },
    },
    fallbacks: { a: ["b", "c"] },
  },
  "test",
);

describe("resolveChain (first match wins)", () => {
  it("takes an explicit models list first", () => {
    const resolved = resolveChain(config, {
      models: ["b", "a"],
      route: "summaries",
      request: { model: "a" },
    });
    expect(resolved).toMatchObject({ route: null, chain: [{ model: "b" }, { model: "a" }] });
  });

  it("then a route, with its policy and deadline", () => {
    const resolved = resolveChain(config, { route: "summaries", request: { model: "c" } });
    expect(resolved.route).toBe("summaries");
    expect(resolved.chain).toEqual([{ model: "a", max_retries: 2 }, { model: "b" }]);
    expect(resolved.policy).toEqual({
      on_content_filter: "fallback",
      on_bad_request: "fallback",
      on_missing_vision: "skip",
    });
    expect(resolved.deadline_ms).toBe(5000);
  });

  it("then request.model naming a route, then a model with its fallbacks", () => {
    expect(resolveChain(config, { request: { model: "summaries" } }).route).toBe("summaries");
    expect(resolveChain(config, { request: { model: "a" } }).chain.map((hop) => hop.model)).toEqual([
      "a",
      "b",
      "c",
    ]);
    expect(resolveChain(config, { request: { model: "b" } }).chain.map((hop) => hop.model)).toEqual(["b"]);
  });

  it("falls back to the default route, and a job deadline overrides the route's", () => {
    const resolved = resolveChain(config, { request: {}, deadline_ms: 1234 });
    expect(resolved).toMatchObject({ route: "default", deadline_ms: 1234, chain: [{ model: "c" }] });
    expect(resolveChain(config, { request: {} }).deadline_ms).toBe(600000);
  });

  it("names the unknown model or route", () => {
    expect(() => resolveChain(config, { models: ["a", "zzz"], request: {} })).toThrow(
      /models\[1\]: unknown model "zzz"/,
    );
    expect(() => resolveChain(config, { route: "nope", request: {} })).toThrow(/route: unknown route "nope"/);
    // A route the models list overrides is still a name the caller got wrong.
    expect(() => resolveChain(config, { models: ["a"], route: "nope", request: {} })).toThrow(
      /route: unknown route "nope"/,
    );
    try {
      resolveChain(config, { request: { model: "gpt-9" } });
    } catch (error) {
      expect(error).toBeInstanceOf(ChainResolutionError);
      expect((error as ChainResolutionError).param).toBe("request.model");
    }
  });
});

describe("ids that are built-in property names", () => {
  it("are unknown, not inherited from Object.prototype", () => {
    expect(() => resolveChain(config, { route: "constructor", request: {} })).toThrow(
      /unknown route "constructor"/,
    );
    expect(() => resolveChain(config, { request: { model: "__proto__" } })).toThrow(ChainResolutionError);
    expect(() => resolveChain(config, { models: ["toString"], request: {} })).toThrow(
      /unknown model "toString"/,
    );
  });
});
