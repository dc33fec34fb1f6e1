import { Gauge, type Registry } from "prom-client";
import { BREAKER_STATES } from "../resilience/redis-shape.js";

/** What the API reads from Redis on each scrape: the same for every API process of a deployment. */
export interface ClusterSnapshot {
  /** Jobs per queue and BullMQ state. */
  queueJobs: Array<{ queue: string; state: string; count: number }>;
  /** Age of each queue's oldest waiting job in seconds (0 when none waits). */
  oldestWaiting: Array<{ queue: string; seconds: number }>;
  /** Every breaker with its current state (closed, half_open, open). */
  breakers: Array<{ breaker: string; state: string }>;
  /** Upstream calls, errors and skips over the last 5 minutes, per provider and model. */
  recentCalls: Array<{ scope: string; id: string; kind: string; count: number }>;
  /** Tokens available now in each rpm/tpm bucket. */
  limits: Array<{ scope: string; id: string; kind: string; available: number }>;
  /** Providers and whether each is cooling down after a 429. */
  cooldowns: Array<{ provider: string; active: boolean }>;
  /** 1 per firing alert, 0 per recently resolved one (alertsFiringSamples). */
  alertsFiring: Array<{ kind: string; subject: string; value: number }>;
}

export interface ClusterGauges {
  /**
   * Replaces every cluster gauge's values with the snapshot's, synchronously (read Redis first,
   * then update: two scrapes that overlap never mix their figures), dropping series that are gone.
   */
  update(snapshot: ClusterSnapshot): void;
  /** Redis did not answer this scrape, or answered an error: no cluster gauge is shown (none is stale), and cascade_redis_up is 0. */
  unavailable(): void;
}

/**
 * Deployment-wide gauges on a process's registry, set from Redis on each scrape rather than kept
 * up to date: any API process answers for the whole deployment.
 */
export function createClusterGauges(registry: Registry): ClusterGauges {
  const registers = [registry];
  const queueJobs = new Gauge({
    name: "cascade_queue_jobs",
    help: "Jobs in each queue by BullMQ state.",
    labelNames: ["queue", "state"] as const,
    registers,
  });
  const oldestWaiting = new Gauge({
    name: "cascade_queue_oldest_waiting_seconds",
    help: "Age of the oldest job waiting to run in each queue (0 when none waits).",
    labelNames: ["queue"] as const,
    registers,
  });
  const breakerState = new Gauge({
    name: "cascade_breaker_state",
    help: "1 for the breaker's current state (closed, half_open, open), 0 for the others.",
    labelNames: ["breaker", "state"] as const,
    registers,
  });
  const recentCalls = new Gauge({
    name: "cascade_recent_calls",
    help: "Over the last 5 minutes: upstream calls, errors and skips; finished requests that tried the subject, and fallbacks among them.",
    labelNames: ["scope", "id", "kind"] as const,
    registers,
  });
  const limitAvailable = new Gauge({
    name: "cascade_limit_available",
    help: "Tokens available now in each rpm/tpm bucket.",
    labelNames: ["scope", "id", "kind"] as const,
    registers,
  });
  const cooldownActive = new Gauge({
    name: "cascade_cooldown_active",
    help: "1 while a provider is cooling down after a 429.",
    labelNames: ["provider"] as const,
    registers,
  });
  const alertsFiring = new Gauge({
    name: "cascade_alerts_firing",
    help: "1 while an alert fires, 0 once it resolved (kind, subject)",
    labelNames: ["kind", "subject"] as const,
    registers,
  });
  const redisUp = new Gauge({
    name: "cascade_redis_up",
    help: "1 when the last scrape read the cluster-wide gauges from Redis; 0 when Redis did not answer (or answered an error) and they were left out.",
    registers,
  });
  const clear = () => {
    for (const gauge of [
      queueJobs,
      oldestWaiting,
      breakerState,
      recentCalls,
      limitAvailable,
      cooldownActive,
      alertsFiring,
    ])
      gauge.reset();
  };
  return {
    unavailable() {
      clear();
      redisUp.set(0);
    },
    update(snapshot) {
      clear();
      redisUp.set(1);
      for (const { queue, state, count } of snapshot.queueJobs) queueJobs.set({ queue, state }, count);
      for (const { queue, seconds } of snapshot.oldestWaiting) oldestWaiting.set({ queue }, seconds);
      for (const { breaker, state } of snapshot.breakers) {
        for (const each of BREAKER_STATES) breakerState.set({ breaker, state: each }, state === each ? 1 : 0);
      }
      for (const { scope, id, kind, count } of snapshot.recentCalls)
        recentCalls.set({ scope, id, kind }, count);
      for (const { scope, id, kind, available } of snapshot.limits) {
        limitAvailable.set({ scope, id, kind }, available);
      }
      for (const { provider, active } of snapshot.cooldowns) cooldownActive.set({ provider }, active ? 1 : 0);
      for (const { kind, subject, value } of snapshot.alertsFiring)
        alertsFiring.set({ kind, subject }, value);
    },
  };
}
