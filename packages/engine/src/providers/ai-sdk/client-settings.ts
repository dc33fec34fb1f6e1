import type { ProviderConfig } from "@cascade/shared";

/**
 * The settings every AI SDK provider client is made with. A keyless endpoint (Ollama, vLLM, a
 * local proxy) gets a placeholder key, so the SDK never falls back to a key of its own from the
 * process's environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) behind the config's back. Extra
 * `headers` are merged after the SDK's own; the config refuses the names that would replace the
 * key or break the call.
 */
export function clientSettings(
  provider: ProviderConfig,
  defaultBaseUrl: string,
  apiKey: string | undefined,
  fetch: typeof globalThis.fetch,
  headers: Readonly<Record<string, string>> | undefined,
) {
  return {
    baseURL: (provider.base_url ?? defaultBaseUrl).replace(/\/+$/, ""),
    apiKey: apiKey ?? "unused",
    fetch,
    ...(headers ? { headers: { ...headers } } : {}),
  };
}
