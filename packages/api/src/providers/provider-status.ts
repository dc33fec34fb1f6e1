import {
  breakerFor,
  bucketCapacity,
  type Config,
  type Keys,
  type LimitScope,
  type LimitsConfig,
  type RedisClient,
} from "@cascade/shared";

const STATS_MINUTES = 5;

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
  calls: number;
  errors: number;
  skips: number;
  error_rate: number | null;
  fallback_rate: number | null;
}

type Reply = [Error | null, unknown];

function parseBreaker(id: string, raw: Record<string, string>): BreakerView {
  const forced = raw.forced === "open" || raw.forced === "closed" ? raw.forced : null;
  return {
    id,
    state: forced ?? raw.state ?? "closed",
    forced,
    // Redis keeps milliseconds; the API speaks Unix seconds, as everywhere else.
    open_until: raw.state === "open" && raw.open_until ? Math.ceil(Number(raw.open_until) / 1000) : null,
    reopens: Number(raw.reopens ?? 0),
    transitions: raw.log
      ? (JSON.parse(raw.log) as BreakerView["transitions"]).map((entry) => ({
          ...entry,
          at: Math.floor(entry.at / 1000),
        }))
      : [],
  };
}

function parseStats(raw: Record<string, string>, nowMs: number): RecentStats {
  const currentMinute = Math.floor(nowMs / 60_000);
  const totals = { calls: 0, errors: 0, skips: 0 };
  for (const [field, value] of Object.entries(raw)) {
    const [minute, kind] = field.split(":");
    if (Number(minute) > currentMinute - STATS_MINUTES && kind && kind in totals) {
      totals[kind as keyof typeof totals] += Number(value);
    }
  }
  const attempts = totals.calls + totals.skips;
  return {
    window_s: STATS_MINUTES * 60,
    ...totals,
    error_rate: totals.calls ? totals.errors / totals.calls : null,
    fallback_rate: attempts ? (totals.errors + totals.skips) / attempts : null,
  };
}

function bucketView(
  scope: LimitScope,
  kind: "rpm" | "tpm",
  limits: LimitsConfig,
  raw: Record<string, string>,
  nowMs: number,
): LimitView {
  const limit = (kind === "rpm" ? limits.rpm : limits.tpm) as number;
  const capacity = bucketCapacity(limit, kind === "rpm" ? limits.burst : undefined);
  const tokens = raw.tokens === undefined ? capacity : Number(raw.tokens);
  const since = raw.ts === undefined ? 0 : Math.max(0, nowMs - Number(raw.ts));
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
 * transitions, limit headroom, 429 cooldowns, and recent error and fallback rates. One pipeline.
 */
export async function readProviderStatus(redis: RedisClient, config: Config, keys: Keys, nowMs: number) {
  const pipeline = redis.pipeline();
  const reads: Array<(reply: unknown) => void> = [];
  const hgetall = (key: string, use: (value: Record<string, string>) => void) => {
    pipeline.hgetall(key);
    reads.push((reply) => use((reply ?? {}) as Record<string, string>));
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
    const breakerId = `provider:${id}`;
    hgetall(keys.breaker(breakerId), (raw) => {
      view.breaker = parseBreaker(breakerId, raw);
    });
    hgetall(keys.cooldown("provider", id), (raw) => {
      view.cooldown_until =
        raw.until && Number(raw.until) > nowMs ? Math.ceil(Number(raw.until) / 1000) : null;
    });
    hgetall(keys.stats("provider", id), (raw) => {
      view.recent = parseStats(raw, nowMs);
    });
    for (const kind of ["rpm", "tpm"] as const) {
      const limits = provider.limits;
      if (limits?.[kind])
        hgetall(keys.bucket("provider", id, kind), (raw) =>
          view.limits.push(bucketView("provider", kind, limits, raw, nowMs)),
        );
    }
    for (const [modelId, model] of Object.entries(config.file.models)) {
      if (model.provider !== id) continue;
      const modelView: Record<string, unknown> = {
        id: modelId,
        name: model.name ?? modelId,
        capabilities: model.capabilities ?? [],
        context_window: model.context_window ?? null,
        breaker: null,
        limits: [] as LimitView[],
      };
      const breaker = breakerFor(id, provider, modelId, model);
      if (breaker.id !== breakerId) {
        hgetall(keys.breaker(breaker.id), (raw) => {
          modelView.breaker = parseBreaker(breaker.id, raw);
        });
      } else modelView.breaker = { id: breakerId, shared_with_provider: true };
      hgetall(keys.stats("model", modelId), (raw) => {
        modelView.recent = parseStats(raw, nowMs);
      });
      for (const kind of ["rpm", "tpm"] as const) {
        const limits = model.limits;
        if (limits?.[kind]) {
          hgetall(keys.bucket("model", modelId, kind), (raw) =>
            (modelView.limits as LimitView[]).push(bucketView("model", kind, limits, raw, nowMs)),
          );
        }
      }
      view.models.push(modelView);
    }
    return view;
  });
  const replies = ((await pipeline.exec()) ?? []) as Reply[];
  replies.forEach(([error, value], index) => {
    if (error) throw error;
    reads[index]?.(value);
  });
  return { object: "list" as const, data: providers };
}

/** The breaker an override names: a provider's, or a model's own (`POST /v1/providers/:id/breaker`). */
export function breakerIdFor(config: Config, id: string): string | undefined {
  if (config.file.providers[id]) return `provider:${id}`;
  const model = config.file.models[id];
  if (model?.breaker) return `model:${id}`;
  return undefined;
}
