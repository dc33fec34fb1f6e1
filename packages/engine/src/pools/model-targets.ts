import {
  type BreakerConfig,
  type DeploymentConfig,
  deploymentKey,
  type LimitsConfig,
  type ModelConfig,
  type PoolStrategy,
} from "@cascade/shared";

/**
 * Where a hop's call goes: a plain model's provider, or one deployment of a pooled model. A
 * deployment has its own breaker, buckets and cooldown, keyed by `key` (`<model>/<deployment>`).
 */
export interface ModelTarget {
  providerId: string;
  /** The upstream model name sent to the provider. */
  upstreamName: string;
  deployment?: {
    id: string;
    /** `<model>/<deployment>`: the subject of its breaker, buckets, cooldown and adapter. */
    key: string;
    weight: number;
    limits: LimitsConfig | undefined;
    breaker: BreakerConfig | undefined;
    /** It sends a key of its own (`api_key_env`), else its provider's. */
    ownKey: boolean;
  };
}

const cache = new WeakMap<ModelConfig, ModelTarget[]>();

/** The targets of a model: one for a plain model, one per deployment for a pool (cached per config). */
export function targetsOf(modelId: string, model: ModelConfig): readonly ModelTarget[] {
  const cached = cache.get(model);
  if (cached) return cached;
  const targets: ModelTarget[] = model.deployments
    ? model.deployments.map((deployment) => deploymentTarget(modelId, model, deployment))
    : [{ providerId: model.provider ?? "unknown", upstreamName: model.name ?? modelId }];
  cache.set(model, targets);
  return targets;
}

function deploymentTarget(modelId: string, model: ModelConfig, deployment: DeploymentConfig): ModelTarget {
  return {
    providerId: deployment.provider,
    upstreamName: deployment.name ?? model.name ?? modelId,
    deployment: {
      id: deployment.id,
      key: deploymentKey(modelId, deployment.id),
      weight: deployment.weight ?? 1,
      limits: deployment.limits,
      breaker: deployment.breaker,
      ownKey: deployment.api_key_env !== undefined,
    },
  };
}

/** A pooled model's strategy (`most_headroom` unless it names one). */
export function strategyOf(model: ModelConfig): PoolStrategy {
  return model.strategy ?? "most_headroom";
}
