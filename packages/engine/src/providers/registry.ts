import { type Config, ConfigError } from "@cascade/shared";
import { createAnthropicAdapter } from "./anthropic.js";
import { createGeminiAdapter } from "./gemini.js";
import { createProviderFetch } from "./http.js";
import { createImageInliner, type ImageInliner } from "./image-download.js";
import { createOpenAIAdapter } from "./openai.js";
import { ProviderError } from "./provider-error.js";
import { watchedFetch } from "./response-watch.js";
import { createSimulatedAdapter } from "./simulated.js";
import type { ProviderAdapter } from "./types.js";

/** A provider this process has no key for: every call fails as the provider would refuse it. */
function keylessAdapter(providerId: string, type: string, envName: string): ProviderAdapter {
  const refuse = async (): Promise<never> => {
    throw new ProviderError(
      "auth_error",
      `environment variable ${envName} (providers.${providerId}.api_key_env) is not set on this process`,
    );
  };
  return { providerId, type, generate: refuse, stream: refuse };
}

export interface ProviderRegistry {
  /** The adapter of a configured provider; throws ConfigError for an id the config lacks. */
  get(providerId: string): ProviderAdapter;
}

/**
 * Builds one adapter per configured provider. Throws ConfigError when a provider cannot work
 * on this worker (its key's env var is unset, or its type is not built yet).
 */
export function createProviderRegistry(
  config: Config,
  options: {
    fetch?: typeof globalThis.fetch;
    random?: () => number;
    /**
     * A provider whose key's env var is unset: a startup error (a worker, the default), or a
     * provider whose every call fails with `auth_error`, so chains fall back past it (the API,
     * which may run the gateway without every worker's keys; it warns at startup).
     */
    missingKey?: "throw" | "fail-calls";
  } = {},
): ProviderRegistry {
  // Watched: a call's first_token_timeout_ms ends when its response headers arrive.
  const fetch = watchedFetch(options.fetch ?? createProviderFetch());
  const adapters = new Map<string, ProviderAdapter>();
  let inliner: ImageInliner | undefined;
  const images = () => {
    inliner ??= createImageInliner({ allowPrivateNetworks: config.file.webhooks.allow_private_networks });
    return inliner;
  };
  for (const [id, provider] of Object.entries(config.file.providers)) {
    if (provider.api_key_env && !config.providerKeys.has(id) && options.missingKey === "fail-calls") {
      adapters.set(id, keylessAdapter(id, provider.type, provider.api_key_env));
      continue;
    }
    if (provider.api_key_env && !config.providerKeys.has(id)) {
      throw new ConfigError(
        `providers.${id}.api_key_env: environment variable ${provider.api_key_env} is not set; export it on this worker, or remove api_key_env for an endpoint that needs no key`,
      );
    }
    // Extra headers (`headers`): sent on every call, merged after the SDK's own; the config
    // refuses the names that would replace the key or break the call (authorization, host, ...).
    const headers = config.providerHeaders.get(id);
    switch (provider.type) {
      case "simulated":
        adapters.set(id, createSimulatedAdapter(id, provider, options.random));
        break;
      case "openai":
        adapters.set(id, createOpenAIAdapter(id, provider, config.providerKeys.get(id), fetch, headers));
        break;
      case "anthropic":
        adapters.set(id, createAnthropicAdapter(id, provider, config.providerKeys.get(id), fetch, headers));
        break;
      case "gemini":
        adapters.set(
          id,
          createGeminiAdapter(id, provider, config.providerKeys.get(id), fetch, images(), headers),
        );
        break;
      default:
        throw new ConfigError(
          `providers.${id}.type: "${provider.type}" is not supported; use openai (any OpenAI-compatible endpoint), anthropic, gemini or simulated`,
        );
    }
  }
  return {
    get(providerId) {
      const adapter = adapters.get(providerId);
      // A model naming a provider this process's config lacks: the config, not the request, is wrong.
      if (!adapter) {
        throw new ConfigError(`providers.${providerId}: no such provider in this process's config`);
      }
      return adapter;
    },
  };
}
