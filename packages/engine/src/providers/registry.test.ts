import { ConfigError, loadConfig } from "@cascade/shared";
import { describe, expect, it } from "vitest";
import { createProviderRegistry } from "./registry.js";

const raw = {
  providers: { up: { type: "openai", base_url: "http://127.0.0.1:9/v1", api_key_env: "UP_KEY" } },
  models: {
    pooled: {
      deployments: [
        { id: "shared", provider: "up" },
        { id: "own", provider: "up", api_key_env: "OWN_KEY", base_url: "http://127.0.0.1:9/other" },
      ],
    },
  },
  routes: { default: { chain: [{ model: "pooled" }] } },
};

describe("createProviderRegistry with pooled deployments", () => {
  it("gives a deployment with its own key or endpoint an adapter of its own", () => {
    const registry = createProviderRegistry(loadConfig({ UP_KEY: "a", OWN_KEY: "b" }, { raw }));
    const provider = registry.get("up");
    expect(registry.get("up", "pooled/shared")).toBe(provider);
    expect(registry.get("up", "pooled/own")).not.toBe(provider);
    expect(registry.get("up", "pooled/own").providerId).toBe("up");
  });

  it("refuses to start a worker without a deployment's key, naming the setting", () => {
    const config = loadConfig({ UP_KEY: "a" }, { raw });
    expect(() => createProviderRegistry(config)).toThrow(ConfigError);
    expect(() => createProviderRegistry(config)).toThrow(
      /models\.pooled\.deployments\.1\.api_key_env: environment variable OWN_KEY is not set/,
    );
  });

  it("lets the API fail that deployment's calls instead (auth_error), so the pool falls back past it", async () => {
    const registry = createProviderRegistry(loadConfig({ UP_KEY: "a" }, { raw }), {
      missingKey: "fail-calls",
    });
    await expect(registry.get("up", "pooled/own").generate({} as never)).rejects.toMatchObject({
      reason: "auth_error",
      // The deployment's own setting: providers.up.api_key_env (UP_KEY) is set.
      message:
        "environment variable OWN_KEY (models.pooled.deployments.1.api_key_env) is not set on this process",
    });
  });

  it("names a provider's setting for a provider's missing key", async () => {
    const registry = createProviderRegistry(loadConfig({ OWN_KEY: "b" }, { raw }), {
      missingKey: "fail-calls",
    });
    await expect(registry.get("up").generate({} as never)).rejects.toMatchObject({
      reason: "auth_error",
      message: "environment variable UP_KEY (providers.up.api_key_env) is not set on this process",
    });
  });
});
