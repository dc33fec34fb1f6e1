import type { CascadeMetrics, ClusterSnapshot, RedisClient } from "@cascade/shared";
import { createClusterGauges, oldestWaitingMs, QUEUE_NAMES } from "@cascade/shared";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { isRedisUnavailableError } from "../plugins/redis-gate.js";
import type { RecentStats, readProviderStatus } from "../providers/provider-status.js";
import { NoAnswerInTime, withinMs } from "../within-ms.js";

/** The counts of a subject's `recent` stats the `cascade_recent_calls` gauge carries, by `kind`. */
const RECENT_KINDS = ["calls", "errors", "skips", "requests", "fallbacks"] as const;

/** The deployment-wide figures of a scrape, all read from Redis before any gauge is touched. */
async function readClusterSnapshot(deps: MetricsRouteDeps): Promise<ClusterSnapshot> {
  // The alerts are read beside the rest, under the same deadline.
  const alerts = deps.alertsFiring();
  alerts.catch(() => {});
  const snapshot: ClusterSnapshot = {
    queueJobs: [],
    oldestWaiting: [],
    breakers: [],
    recentCalls: [],
    limits: [],
    cooldowns: [],
    alertsFiring: [],
  };
  const now = deps.now();
  for (const [queueName, queue] of Object.entries(deps.queues)) {
    const counts = await queue.getJobCounts(
      "waiting",
      "prioritized",
      "active",
      "delayed",
      "completed",
      "failed",
    );
    for (const [state, count] of Object.entries(counts)) {
      snapshot.queueJobs.push({ queue: queueName, state, count });
    }
    // A sample: fair share orders the prioritized set by tenant and aging, not by age.
    const oldest = await oldestWaitingMs(deps.redis, {
      wait: queue.toKey("wait"),
      prioritized: queue.toKey("prioritized"),
      // A completion job parked there without having started waits too; a webhook delivery
      // there waits for a retry on its schedule.
      ...(queueName === QUEUE_NAMES.completions ? { delayed: queue.toKey("delayed") } : {}),
      job: (jobId) => queue.toKey(jobId),
    });
    snapshot.oldestWaiting.push({
      queue: queueName,
      seconds: oldest === undefined ? 0 : Math.max(0, now - oldest) / 1000,
    });
  }
  const status = await deps.providerStatus();
  const seenBreakers = new Set<string>();
  const seenPools = new Set<string>();
  for (const provider of status.data) {
    const breakers = [provider.breaker, ...provider.models.map((model) => model.breaker)];
    for (const breaker of breakers as Array<{ id: string; state?: string } | null>) {
      if (!breaker?.state || seenBreakers.has(breaker.id)) continue;
      seenBreakers.add(breaker.id);
      snapshot.breakers.push({ breaker: breaker.id, state: breaker.state });
    }
    // A pool's deployment is its own subject (`<model>/<deployment>`), as its breaker is; the
    // pooled model is one too (its `model_recent` and its own buckets, on each deployment's entry:
    // counted once).
    const subjects: Array<[string, string, Record<string, unknown>]> = [
      ["provider", provider.id, provider as unknown as Record<string, unknown>],
    ];
    for (const model of provider.models) {
      if (model.deployment === undefined) {
        subjects.push(["model", String(model.id), model]);
        continue;
      }
      const limits = (model.limits as Array<{ scope: string }> | undefined) ?? [];
      subjects.push([
        "deployment",
        `${String(model.id)}/${String(model.deployment)}`,
        { ...model, limits: limits.filter((limit) => limit.scope === "deployment") },
      ]);
      if (!seenPools.has(String(model.id))) {
        seenPools.add(String(model.id));
        subjects.push([
          "model",
          String(model.id),
          { recent: model.model_recent, limits: limits.filter((limit) => limit.scope === "model") },
        ]);
      }
    }
    for (const [scope, id, view] of subjects) {
      const recent = view.recent as RecentStats | undefined;
      if (recent) {
        for (const kind of RECENT_KINDS) snapshot.recentCalls.push({ scope, id, kind, count: recent[kind] });
      }
      for (const limit of (view.limits as Array<{ kind: string; available: number }>) ?? []) {
        snapshot.limits.push({ scope, id, kind: limit.kind, available: limit.available });
      }
    }
    snapshot.cooldowns.push({ provider: provider.id, active: Boolean(provider.cooldown_until) });
  }
  snapshot.alertsFiring = await alerts;
  return snapshot;
}

export interface MetricsRouteDeps {
  /** The API process's own metrics (gateway requests, attempts, breaker transitions…). */
  metrics: CascadeMetrics;
  /** Breakers, limits and recent calls of every provider and model, read from Redis. */
  providerStatus: () => ReturnType<typeof readProviderStatus>;
  queues: Record<string, Queue>;
  /** The queues' Redis, for their oldest waiting jobs. */
  redis: RedisClient;
  /** 1 per firing alert, 0 per recently resolved one (cascade_alerts_firing), read from Redis. */
  alertsFiring: () => Promise<ClusterSnapshot["alertsFiring"]>;
  /** API_REDIS_WAIT_MS: a scrape waits for Redis within SCRAPE_WAIT_BOUNDS_MS of it. */
  redisWaitMs: number;
  /** Unix ms, for the age of the oldest waiting job. */
  now: () => number;
}

/**
 * GET /metrics in Prometheus text format: this API process's own counters and histograms, plus
 * cluster-wide gauges read from Redis on each scrape (queue depth by state, the oldest waiting
 * job's age, breaker states, recent calls/errors/skips per provider and model, limit headroom), so
 * any API process answers for the whole deployment.
 */
export function registerMetricsRoute(app: FastifyInstance, deps: MetricsRouteDeps): void {
  const gauges = createClusterGauges(deps.metrics.registry);
  const waitMs = Math.min(SCRAPE_WAIT_BOUNDS_MS.max, Math.max(SCRAPE_WAIT_BOUNDS_MS.min, deps.redisWaitMs));
  /** The last scrape's setting and reading of the gauges: scrapes that overlap take turns at it. */
  let turn: Promise<unknown> = Promise.resolve();
  // Not held by the Redis gate: while Redis is away a scrape still gets this process's own
  // counters (an outage is when they matter most), and no cluster-wide gauge rather than a 503.
  // Nor by an error Redis answers (a key of the wrong type, an ACL, OOM on a script): the gauges are
  // left out the same way, and the error is logged, not a 500 that loses the counters too. Any
  // other error is a fault of this process's, a 500, not a Redis said to be down.
  app.get("/metrics", { config: { access: "admin", withoutRedis: true } }, async (request, reply) => {
    const snapshot = await withinMs(readClusterSnapshot(deps), waitMs).catch((error: unknown) => {
      if (error instanceof NoAnswerInTime || isRedisUnavailableError(error)) return undefined;
      if ((error as Error | undefined)?.name !== "ReplyError") throw error;
      request.log.error({ err: error }, "metrics: Redis refused a read of the cluster-wide gauges");
      return undefined;
    });
    // Set and read in one turn each: another scrape's gauges never end up in this one's page.
    const page = turn.then(() => {
      if (snapshot) gauges.update(snapshot);
      else gauges.unavailable();
      return deps.metrics.registry.metrics();
    });
    turn = page.catch(() => {});
    reply.header("content-type", deps.metrics.registry.contentType);
    return page;
  });
}

/**
 * How long a scrape waits for Redis, whatever API_REDIS_WAIT_MS says: a scrape's dozen reads need
 * more than 0 ms (a setting that means "do not wait for a reconnect"), and one that waits longer
 * than Prometheus's default scrape timeout (10 s) is lost whole.
 */
const SCRAPE_WAIT_BOUNDS_MS = { min: 1_000, max: 5_000 };
