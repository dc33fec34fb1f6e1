import type { Clock, Keys, PoolStrategy, RedisClient } from "@cascade/shared";
import type { HopPlans, HopRequest } from "../resilience/hop-plan.js";
import { POOL_FAILED_LUA, POOL_LATENCY_LUA, POOL_STATE_LUA } from "./pool-state.lua.js";

/** How one deployment of a pool stands (pool-state.lua). */
export interface DeploymentState {
  /** Open, probing or cooling down: passed over. */
  blocked: boolean;
  /** The smallest share left of its buckets: 1 full, below 0 when places in line are taken. */
  headroom: number;
  /** Until its buckets have a token. */
  waitMs: number;
  inFlight: number;
  /** Moving average of recent successful calls, undefined before the first. */
  latencyMs: number | undefined;
  /** `lowest_latency`: its last call failed less than FAILURE_MEMORY_MS ago (no success since). */
  failedRecently: boolean;
}

type Commands = RedisClient & {
  cascadePoolState(numberOfKeys: number, ...args: Array<string | number>): Promise<number[][]>;
  cascadePoolLatency(numberOfKeys: number, ...args: Array<string | number>): Promise<number>;
  cascadePoolFailed(numberOfKeys: number, ...args: Array<string | number>): Promise<number>;
};

/** Weight of a new latency sample in the moving average (about the last ten calls count). */
const LATENCY_WEIGHT = 0.2;
/** A call counted in flight is forgotten after this, should its worker die before it ends. */
const IN_FLIGHT_GRACE_MS = 30_000;
/**
 * How long `lowest_latency` puts a deployment whose call failed after the pool's others (ADR
 * 0034): long enough that a refused key costs one failed call in this time, not one per request;
 * short enough that a deployment that recovers is soon tried again.
 */
export const FAILURE_MEMORY_MS = 30_000;

/**
 * What a pool's strategy reads and writes in Redis, shared by every worker: the deployments'
 * state (one script call per pooled hop), calls in flight (`least_busy`) and latency
 * (`lowest_latency`). Writes are fire-and-forget: a lost one only blurs the next choice.
 */
export class PoolSignals {
  private readonly redis: Commands;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly plans: HopPlans,
    private readonly clock: Clock,
  ) {
    redis.defineCommand("cascadePoolState", { lua: POOL_STATE_LUA });
    redis.defineCommand("cascadePoolLatency", { lua: POOL_LATENCY_LUA });
    redis.defineCommand("cascadePoolFailed", { lua: POOL_FAILED_LUA });
    this.redis = redis as Commands;
  }

  /** The state of each deployment `requests` name (in order), read in one round trip. */
  async state(requests: readonly HopRequest[], strategy: PoolStrategy): Promise<DeploymentState[]> {
    const keys: string[] = [];
    const index = (key: string) => keys.push(key);
    const nowMs = this.clock.now();
    const modelId = requests[0]?.modelId ?? "";
    const specs = requests.map((request) => {
      const plan = this.plans.planFor(request, nowMs);
      const key = (position: number) => index(plan.keys[position - 1] as string);
      return {
        state: key(plan.breaker.state),
        cooldowns: plan.cooldowns.map(key),
        buckets: plan.buckets.map((bucket) => ({
          key: key(bucket.key),
          rate: bucket.rate,
          capacity: bucket.capacity,
        })),
        in_flight:
          strategy === "least_busy" && request.deployment
            ? index(this.keys.deploymentInFlight(request.deployment.key))
            : 0,
      };
    });
    const timed = strategy === "lowest_latency";
    const latencyKey = timed ? index(this.keys.poolLatency(modelId)) : 0;
    const failuresKey = timed ? index(this.keys.poolFailures(modelId)) : 0;
    const fields = requests.map((request) => request.deployment?.key ?? request.providerId);
    const rows = await this.redis.cascadePoolState(
      keys.length,
      ...keys,
      JSON.stringify(specs),
      latencyKey,
      JSON.stringify(fields),
      failuresKey,
      FAILURE_MEMORY_MS,
    );
    return rows.map((row) => ({
      blocked: Number(row[0]) === 1,
      headroom: Number(row[1]) / 1000,
      waitMs: Number(row[2]),
      inFlight: Number(row[3]),
      latencyMs: Number(row[4]) >= 0 ? Number(row[4]) : undefined,
      failedRecently: Number(row[5]) === 1,
    }));
  }

  /** A call went out on a deployment (`least_busy` counts it until `callEnded`). */
  callStarted(deploymentKey: string, callId: string, timeoutMs: number): void {
    const expiresAt = this.clock.now() + timeoutMs + IN_FLIGHT_GRACE_MS;
    const key = this.keys.deploymentInFlight(deploymentKey);
    this.redis
      .multi()
      .zadd(key, expiresAt, callId)
      .zremrangebyscore(key, "-inf", this.clock.now() - IN_FLIGHT_GRACE_MS)
      .pexpire(key, timeoutMs + 2 * IN_FLIGHT_GRACE_MS)
      .exec()
      .catch(() => undefined);
  }

  callEnded(deploymentKey: string, callId: string): void {
    this.redis.zrem(this.keys.deploymentInFlight(deploymentKey), callId).catch(() => undefined);
  }

  /** A call on a deployment answered in `latencyMs` (`lowest_latency`): its failure is forgotten. */
  latency(modelId: string, deploymentKey: string, latencyMs: number): void {
    this.redis
      .cascadePoolLatency(
        2,
        this.keys.poolLatency(modelId),
        this.keys.poolFailures(modelId),
        deploymentKey,
        Math.round(latencyMs),
        LATENCY_WEIGHT,
      )
      .catch(() => undefined);
  }

  /**
   * A call on a deployment failed for a reason of the deployment's (`lowest_latency`): it goes
   * after the pool's others for FAILURE_MEMORY_MS, or until it answers again.
   */
  failed(modelId: string, deploymentKey: string): void {
    this.redis.cascadePoolFailed(1, this.keys.poolFailures(modelId), deploymentKey).catch(() => undefined);
  }
}
