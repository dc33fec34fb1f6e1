import type { BreakerConfig, ModelConfig, ProviderConfig, Reason } from "../config/schema.js";
import { breakerId } from "../redis/keys.js";

/** Breaker defaults (contract, "Config file"). */
export const BREAKER_DEFAULTS = {
  failure_threshold: 0.5,
  min_requests: 10,
  window_ms: 30_000,
  open_ms: 15_000,
} as const;

/** Reasons that count as failures for breakers; 4xx and 429 never do. */
export const BREAKER_FAILURES: ReadonlySet<Reason> = new Set([
  "server_error",
  "timeout",
  "network_error",
  "invalid_response",
]);

export interface ResolvedBreaker {
  /** `provider:<id>`, or `model:<id>` for a model that declares its own breaker. */
  id: string;
  failure_threshold: number;
  min_requests: number;
  window_ms: number;
  open_ms: number;
}

/** The breaker guarding a model: its own if it declares one, else its provider's. */
export function breakerFor(
  providerId: string,
  provider: ProviderConfig,
  modelId: string,
  model: ModelConfig,
): ResolvedBreaker {
  const merged: Required<BreakerConfig> = { ...BREAKER_DEFAULTS, ...provider.breaker };
  if (model.breaker) return { id: breakerId("model", modelId), ...merged, ...model.breaker };
  return { id: breakerId("provider", providerId), ...merged };
}

/** Bucket capacity: `burst` for rpm (default ceil(rpm / 60), at least 1); one second's worth for tpm. */
export function bucketCapacity(perMinute: number, burst?: number): number {
  return Math.max(1, burst ?? Math.ceil(perMinute / 60));
}

/** The provider a plain model names, or (for a pool) its first deployment's: for labels, never for calls. */
export function primaryProvider(model: ModelConfig): string {
  return model.provider ?? model.deployments?.[0]?.provider ?? "unknown";
}
