import {
  type BreakerHash,
  breakerFor,
  breakerHashSchema,
  breakerId,
  bucketCapacity,
  bucketHashSchema,
  type Config,
  cooldownHashSchema,
  type DeploymentConfig,
  deploymentKey,
  type Keys,
  type LimitScope,
  type LimitsConfig,
  type RedisClient,
  type STATS_KINDS,
  STATS_MINUTES,
  statsHashSchema,
} from "@cascade/shared";
import type { z } from "zod";

export interface BreakerView {
  id: string;
  /** closed | open | half_open; `forced` says when an operator pinned it. */
  state: string;
  forced: "open" | "closed" | null;
  open_until: number | null;
  reopens: number;
  transitions: Array<{ at: number; from: string; to: string; why: string }>;
}

export interface LimitView {
  scope: LimitScope;
  kind: "rpm" | "tpm";
  limit: number;
  capacity: number;
  /** Tokens available right now (may be negative after a large request). */
  available: number;
}

export interface RecentStats {
  window_s: number;
  /** Attempts: upstream calls made, the failed among them, and hops skipped without a call. */
  calls: number;
  errors: number;
  skips: number;
  /** Finished requests that tried this subject, and those of them answered by another (ADR 0029). */
  requests: number;
  fallbacks: number;
  /** errors / calls. */
  error_rate: number | null;
  /** fallbacks / requests: counted in requests, as a route's fallback rate is. */
  fallback_rate: number | null;
}

type Reply = [Error | null, unknown];

function breakerView(id: string, raw: BreakerHash, nowMs: number): BreakerView {
  const forced = raw.forced ?? null;
  // An open breaker past its open_until lets the next call through as the probe: it is half-open
  // though no call has come to say so yet (no traffic since, or an override set back to auto), as
  // the breaker_open alert reads it (alert-measures.ts).
  const lapsed = raw.state === "open" && (raw.open_until ?? 0) <= nowMs;
  const state = lapsed ? "half_open" : (raw.state ?? "closed");
  return {
    id,
    state: forced ?? state,
    forced,
    // Redis keeps milliseconds; the API speaks Unix seconds, as everywhere else.
    open_until: state === "open" && raw.open_until ? Math.ceil(raw.open_until / 1000) : null,
    reopens: raw.reopens ?? 0,
    transitions: (raw.log ?? []).map((entry) => ({ ...entry, at: Math.floor(entry.at / 1000) })),
  };
}

function statsView(raw: Record<string, number>, nowMs: number): RecentStats {
  const currentMinute = Math.floor(nowMs / 60_000);
  // Typed by the kinds the writers use, so a kind added there must be summed here.
  const totals: Record<(typeof STATS_KINDS)[keyof typeof STATS_KINDS], number> = {
    calls: 0,
    errors: 0,
    skips: 0,
    requests: 0,
    fallbacks: 0,
  };
  for (const [field, value] of Object.entries(raw)) {
    const [minute, kind] = field.split(":");
    if (Number(minute) > currentMinute - STATS_MINUTES && kind && kind in totals) {
      totals[kind as keyof typeof totals] += value;
    }
  }
  return {
    window_s: STATS_MINUTES * 60,
    ...totals,
    error_rate: totals.calls ? totals.errors / totals.calls : null,
    fallback_rate: totals.requests ? totals.fallbacks / totals.requests : null,
  };
}

function bucketView(
  scope: LimitScope,
  kind: "rpm" | "tpm",
  limits: LimitsConfig,
  raw: z.infer<typeof bucketHashSchema>,
  nowMs: number,
): LimitView {
  const limit = (kind === "rpm" ? limits.rpm : limits.tpm) as number;
  const capacity = bucketCapacity(limit, kind === "rpm" ? limits.burst : limits.tpm_burst);
  const tokens = raw.tokens ?? capacity;
  const since = raw.ts === undefined ? 0 : Math.max(0, nowMs - raw.ts);
  return {
    scope,
    kind,
    limit,
    capacity,
    available: Math.floor(Math.min(capacity, tokens + (since * limit) / 60_000)),
  };
}

/**
 * The view behind GET /v1/providers: per provider and model, breaker state and recent
 * transitions, limit headroom, 429 cooldowns, and recent error and fallback rates. One pipeline,
 * whose first command is TIME: "now" is Redis's clock, the one the scripts stamped these hashes
 * with, not this process's.
 */
export async function readProviderStatus(
  redis: RedisClient,
  config: Config,
  keys: Keys,
  onInvalid: (key: string, problem: string) => void = () => {},
) {
  const pipeline = redis.pipeline();
  const reads: Array<(reply: unknown) => void> = [];
  let nowMs = 0;
  pipeline.time();
  reads.push((reply) => {
    const [seconds, microseconds] = reply as [string, string];
    nowMs = Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000);
  });
  // Each hash is parsed with its schema from @cascade/shared: a field the scripts no longer
  // write, or a value they never would, is reported (and that entry shown with defaults) rather
  // than shown as a wrong number; one bad hash must not take the whole view (and /metrics) down.
  const hgetall = <Schema extends z.ZodType>(
    key: string,
    schema: Schema,
    use: (value: z.infer<Schema>) => void,
  ) => {
    pipeline.hgetall(key);
    reads.push((reply) => {
      const parsed = schema.safeParse(reply ?? {});
      if (parsed.success) return use(parsed.data);
      onInvalid(key, parsed.error.message);
      use(schema.parse({}));
    });
  };
  const providers = Object.entries(config.file.providers).map(([id, provider]) => {
    const view = {
      id,
      object: "provider" as const,
      type: provider.type,
      breaker: undefined as BreakerView | undefined,
      cooldown_until: null as number | null,
      limits: [] as LimitView[],
      recent: undefined as RecentStats | undefined,
      models: [] as Array<Record<string, unknown>>,
    };
    const providerBreakerId = breakerId("provider", id);
    hgetall(keys.breaker(providerBreakerId), breakerHashSchema, (raw) => {
      view.breaker = breakerView(providerBreakerId, raw, nowMs);
    });
    hgetall(keys.cooldown("provider", id), cooldownHashSchema, (raw) => {
      view.cooldown_until = raw.until && raw.until > nowMs ? Math.ceil(raw.until / 1000) : null;
    });
    hgetall(keys.stats("provider", id), statsHashSchema, (raw) => {
      view.recent = statsView(raw, nowMs);
    });
    for (const kind of ["rpm", "tpm"] as const) {
      const limits = provider.limits;
      if (limits?.[kind])
        hgetall(keys.bucket("provider", id, kind), bucketHashSchema, (raw) =>
          view.limits.push(bucketView("provider", kind, limits, raw, nowMs)),
        );
    }
    for (const [modelId, model] of Object.entries(config.file.models)) {
      for (const deployment of model.deployments ?? []) {
        if (deployment.provider === id) view.models.push(deploymentView(modelId, deployment));
      }
      if (model.provider !== id) continue;
      const modelView: Record<string, unknown> = {
        id: modelId,
        name: model.name ?? modelId,
        capabilities: model.capabilities ?? [],
        context_window: model.context_window ?? null,
        breaker: null,
        // A model with its own limits has its own 429 cooldown (the provider's cools it too).
        cooldown_until: null as number | null,
        limits: [] as LimitView[],
      };
      if (model.limits) {
        hgetall(keys.cooldown("model", modelId), cooldownHashSchema, (raw) => {
          modelView.cooldown_until = raw.until && raw.until > nowMs ? Math.ceil(raw.until / 1000) : null;
        });
      }
      const breaker = breakerFor(id, provider, modelId, model);
      if (breaker.id !== providerBreakerId) {
        hgetall(keys.breaker(breaker.id), breakerHashSchema, (raw) => {
          modelView.breaker = breakerView(breaker.id, raw, nowMs);
        });
      } else modelView.breaker = { id: providerBreakerId, shared_with_provider: true };
      hgetall(keys.stats("model", modelId), statsHashSchema, (raw) => {
        modelView.recent = statsView(raw, nowMs);
      });
      for (const kind of ["rpm", "tpm"] as const) {
        const limits = model.limits;
        if (limits?.[kind]) {
          hgetall(keys.bucket("model", modelId, kind), bucketHashSchema, (raw) =>
            (modelView.limits as LimitView[]).push(bucketView("model", kind, limits, raw, nowMs)),
          );
        }
      }
      view.models.push(modelView);
    }
    return view;
  });
  /**
   * A pooled model's deployment on this provider: its own breaker, cooldown, buckets and `recent`
   * stats, and the pooled model's (`model_recent`, and its buckets in `limits`, scope "model").
   */
  function deploymentView(modelId: string, deployment: DeploymentConfig): Record<string, unknown> {
    const model = config.file.models[modelId];
    const key = deploymentKey(modelId, deployment.id);
    const view: Record<string, unknown> = {
      id: modelId,
      deployment: deployment.id,
      name: deployment.name ?? model?.name ?? modelId,
      weight: deployment.weight ?? 1,
      strategy: model?.strategy ?? "most_headroom",
      capabilities: model?.capabilities ?? [],
      context_window: model?.context_window ?? null,
      breaker: null,
      cooldown_until: null,
      limits: [] as LimitView[],
    };
    const id = breakerId("deployment", key);
    hgetall(keys.breaker(id), breakerHashSchema, (raw) => {
      view.breaker = breakerView(id, raw, nowMs);
    });
    hgetall(keys.cooldown("deployment", key), cooldownHashSchema, (raw) => {
      view.cooldown_until = raw.until && raw.until > nowMs ? Math.ceil(raw.until / 1000) : null;
    });
    hgetall(keys.stats("deployment", key), statsHashSchema, (raw) => {
      view.recent = statsView(raw, nowMs);
    });
    // The pooled model's own figures, across all its deployments (a request moving between them
    // is no fallback): what `recent` is for a model with one provider.
    hgetall(keys.stats("model", modelId), statsHashSchema, (raw) => {
      view.model_recent = statsView(raw, nowMs);
    });
    for (const kind of ["rpm", "tpm"] as const) {
      const limits = deployment.limits;
      if (limits?.[kind]) {
        hgetall(keys.bucket("deployment", key, kind), bucketHashSchema, (raw) =>
          (view.limits as LimitView[]).push(bucketView("deployment", kind, limits, raw, nowMs)),
        );
      }
    }
    // The pooled model's own buckets cap the pool as a whole, on top of each deployment's: shown
    // (scope "model", as on a plain model's entry) on every deployment entry, since every call on
    // the deployment takes a token from them.
    for (const kind of ["rpm", "tpm"] as const) {
      const limits = model?.limits;
      if (limits?.[kind]) {
        hgetall(keys.bucket("model", modelId, kind), bucketHashSchema, (raw) =>
          (view.limits as LimitView[]).push(bucketView("model", kind, limits, raw, nowMs)),
        );
      }
    }
    return view;
  }
  const replies = ((await pipeline.exec()) ?? []) as Reply[];
  replies.forEach(([error, value], index) => {
    if (error) throw error;
    reads[index]?.(value);
  });
  return { object: "list" as const, data: providers };
}

/**
 * The breaker an override names: a provider's, a model's own, or a pool's deployment's
 * (`<model>/<deployment>`) (`POST /v1/providers/:id/breaker`).
 */
export function breakerIdFor(config: Config, id: string): string | undefined {
  if (config.file.providers[id]) return breakerId("provider", id);
  // Model ids may hold "/" (`anthropic/claude`); deployment ids never do.
  const slash = id.lastIndexOf("/");
  const pooled = slash > 0 ? config.file.models[id.slice(0, slash)] : undefined;
  const deploymentId = id.slice(slash + 1);
  if (pooled?.deployments?.some((deployment) => deployment.id === deploymentId))
    return breakerId("deployment", id);
  const model = config.file.models[id];
  if (model?.breaker) return breakerId("model", id);
  return undefined;
}
