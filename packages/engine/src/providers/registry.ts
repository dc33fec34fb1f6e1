import { type Config, ConfigError, deploymentKey, type ProviderConfig } from "@cascade/shared";
import type { Dispatcher } from "undici";
import { createAnthropicAdapter } from "./anthropic.js";
import { createGeminiAdapter } from "./gemini.js";
import { createProviderHttp, DEFAULT_PROVIDER_CONNECTIONS } from "./http.js";
import { createImageInliner, type ImageInliner } from "./image-download.js";
import { type ImageUrlCheckOptions, withImageUrlCheck } from "./image-url-check.js";
import { createOpenAIAdapter } from "./openai.js";
import { ProviderError } from "./provider-error.js";
import { watchedFetch } from "./response-watch.js";
import { createSimulatedAdapter } from "./simulated.js";
import type { ProviderAdapter } from "./types.js";

/**
 * A provider (or deployment) this process has no key for: every call fails as the provider would
 * refuse it. `setting`: where the key's variable is named (`providers.<id>` or
 * `models.<id>.deployments.<n>`), so the message sends the operator to the right line.
 */
function keylessAdapter(providerId: string, type: string, envName: string, setting: string): ProviderAdapter {
  const refuse = async (): Promise<never> => {
    throw new ProviderError(
      "auth_error",
      `environment variable ${envName} (${setting}.api_key_env) is not set on this process`,
    );
  };
  return { providerId, type, generate: refuse, stream: refuse };
}

export interface ProviderRegistry {
  /**
   * The adapter of a configured provider, or of a pooled model's deployment (`deployment`:
   * `<model>/<deployment>`) where it has a key or endpoint of its own; throws ConfigError for
   * an id the config lacks.
   */
  get(providerId: string, deployment?: string): ProviderAdapter;
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
    /**
     * Upstream connections of each provider whose config sets no `connections`: a worker passes
     * WORKER_CONCURRENCY (one connection per job slot); default DEFAULT_PROVIDER_CONNECTIONS.
     */
    connections?: number;
    /** The check of image URLs' hosts before a call that passes them on (tests play DNS with it). */
    imageUrls?: ImageUrlCheckOptions;
  } = {},
): ProviderRegistry {
  /**
   * The HTTP client of one adapter: its own Agent of `connections` sockets, and a fetch over it
   * for the AI SDK (watched: a call's first_token_timeout_ms ends at the answer's first byte).
   * An injected fetch (tests) is used as it is, and the lean OpenAI client stays off.
   */
  const httpFor = (provider: ProviderConfig): { fetch: typeof globalThis.fetch; dispatcher?: Dispatcher } => {
    if (options.fetch) return { fetch: watchedFetch(options.fetch) };
    const http = createProviderHttp({
      connections: provider.connections ?? options.connections ?? DEFAULT_PROVIDER_CONNECTIONS,
    });
    return { fetch: watchedFetch(http.fetch), dispatcher: http.dispatcher };
  };
  const adapters = new Map<string, ProviderAdapter>();
  const deployments = new Map<string, ProviderAdapter>();
  let inliner: ImageInliner | undefined;
  const images = () => {
    inliner ??= createImageInliner({ allowPrivateNetworks: config.file.webhooks.allow_private_networks });
    return inliner;
  };
  // Providers that fetch image URLs themselves get them only on public hosts (ADR 0007), unless
  // private networks are allowed. Gemini's images are downloaded by Cascade, through the guard.
  const allowPrivate = config.file.webhooks.allow_private_networks;
  const fetchingImages = (adapter: ProviderAdapter): ProviderAdapter =>
    allowPrivate ? adapter : withImageUrlCheck(adapter, options.imageUrls);
  const build = (
    id: string,
    provider: ProviderConfig,
    key: string | undefined,
    keyEnv: string | undefined,
    setting: string,
  ): ProviderAdapter => {
    if (keyEnv && key === undefined) {
      if (options.missingKey === "fail-calls") return keylessAdapter(id, provider.type, keyEnv, setting);
      throw new ConfigError(
        `${setting}.api_key_env: environment variable ${keyEnv} is not set; export it on this worker, or remove api_key_env for an endpoint that needs no key`,
      );
    }
    // Extra headers (`headers`): sent on every call, merged after the SDK's own; the config
    // refuses the names that would replace the key or break the call (authorization, host, ...).
    const headers = config.providerHeaders.get(id);
    switch (provider.type) {
      case "simulated":
        return createSimulatedAdapter(id, provider, options.random);
      case "openai": {
        const http = httpFor(provider);
        return fetchingImages(
          createOpenAIAdapter(id, provider, key, http.fetch, headers, { dispatcher: http.dispatcher }),
        );
      }
      case "anthropic":
        return fetchingImages(createAnthropicAdapter(id, provider, key, httpFor(provider).fetch, headers));
      case "gemini":
        return createGeminiAdapter(id, provider, key, httpFor(provider).fetch, images(), headers);
      default:
        throw new ConfigError(
          `providers.${id}.type: "${provider.type}" is not supported; use openai (any OpenAI-compatible endpoint), anthropic, gemini or simulated`,
        );
    }
  };
  for (const [id, provider] of Object.entries(config.file.providers)) {
    adapters.set(
      id,
      build(id, provider, config.providerKeys.get(id), provider.api_key_env, `providers.${id}`),
    );
  }
  // A deployment with its own key or endpoint gets an adapter of its own (its provider's settings,
  // `connections` included, with those replaced), so its own pool of connections; the others
  // share their provider's adapter and connections.
  for (const [modelId, model] of Object.entries(config.file.models)) {
    model.deployments?.forEach((deployment, index) => {
      if (!deployment.api_key_env && !deployment.base_url) return;
      const provider = config.file.providers[deployment.provider];
      if (!provider) return;
      const key = deploymentKey(modelId, deployment.id);
      const own: ProviderConfig = {
        ...provider,
        ...(deployment.base_url ? { base_url: deployment.base_url } : {}),
      };
      const keyEnv = deployment.api_key_env ?? provider.api_key_env;
      const value = deployment.api_key_env
        ? config.providerKeys.get(key)
        : config.providerKeys.get(deployment.provider);
      const setting = deployment.api_key_env
        ? `models.${modelId}.deployments.${index}`
        : `providers.${deployment.provider}`;
      deployments.set(key, build(deployment.provider, own, value, keyEnv, setting));
    });
  }
  return {
    get(providerId, deployment) {
      const adapter = (deployment !== undefined && deployments.get(deployment)) || adapters.get(providerId);
      // A model naming a provider this process's config lacks: the config, not the request, is wrong.
      if (!adapter) {
        throw new ConfigError(`providers.${providerId}: no such provider in this process's config`);
      }
      return adapter;
    },
  };
}
