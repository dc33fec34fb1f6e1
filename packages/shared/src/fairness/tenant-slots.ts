import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { TENANT_SLOT_RELEASE_LUA, TENANT_SLOT_RENEW_LUA, TENANT_SLOT_TAKE_LUA } from "./tenant-slots.lua.js";

type Command = (...args: Array<string | number>) => Promise<unknown>;

const TAKE_COMMAND = "cascadeTenantSlotTake";
const RENEW_COMMAND = "cascadeTenantSlotRenew";
const RELEASE_COMMAND = "cascadeTenantSlotRelease";

/**
 * A slot a running job holds; `release` when the run ends, however it ends. It resolves to the id
 * of the tenant's first job waiting for a slot, which the caller wakes, if any.
 */
export interface TenantSlot {
  release(): Promise<string | undefined>;
}

/**
 * A tenant's `max_concurrency` across all workers: a job takes a slot when it starts, renews it
 * every `holdMs / 4` while it runs, and releases it when its run ends. A worker that dies leaves
 * its slots to expire after `holdMs`. Tenants without a cap never call this.
 */
export class TenantSlots {
  private readonly take: Command;
  private readonly renew: Command;
  private readonly free: Command;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly holdMs: number,
    private readonly onRenewError: (error: unknown) => void = () => {},
  ) {
    // Defined once, when the worker is built (not lazily on a busy connection).
    if (!(TAKE_COMMAND in redis))
      redis.defineCommand(TAKE_COMMAND, { numberOfKeys: 2, lua: TENANT_SLOT_TAKE_LUA });
    if (!(RENEW_COMMAND in redis))
      redis.defineCommand(RENEW_COMMAND, { numberOfKeys: 1, lua: TENANT_SLOT_RENEW_LUA });
    if (!(RELEASE_COMMAND in redis))
      redis.defineCommand(RELEASE_COMMAND, { numberOfKeys: 4, lua: TENANT_SLOT_RELEASE_LUA });
    const table = redis as unknown as Record<string, Command>;
    this.take = (table[TAKE_COMMAND] as Command).bind(redis);
    this.renew = (table[RENEW_COMMAND] as Command).bind(redis);
    this.free = (table[RELEASE_COMMAND] as Command).bind(redis);
  }

  /**
   * A slot for one run (`runId`, e.g. job id and lock token) of job `job.id` of `tenant`, or
   * undefined when `max` of the tenant's runs hold one already: the job is then on the tenant's
   * waiting set, in `job.order` (lower first), and a released slot hands it back to be woken.
   */
  async acquire(
    tenant: string,
    runId: string,
    max: number,
    job: { id: string; order: number },
  ): Promise<TenantSlot | undefined> {
    const key = this.keys.tenantRunning(tenant);
    const waiting = this.keys.tenantWaiting(tenant);
    if (Number(await this.take(key, waiting, runId, max, this.holdMs, job.id, job.order)) !== 1)
      return undefined;
    const timer = setInterval(
      () => void this.renew(key, runId, this.holdMs).catch(this.onRenewError),
      Math.max(50, Math.floor(this.holdMs / 4)),
    );
    timer.unref();
    let released = false;
    return {
      release: async () => {
        if (released) return undefined;
        released = true;
        clearInterval(timer);
        const woken = await this.free(
          key,
          waiting,
          this.keys.completionQueueDelayed,
          this.keys.completionQueueActive,
          runId,
        );
        return typeof woken === "string" ? woken : undefined;
      },
    };
  }
}
