import type { Config, Keys, Logger, RedisClient } from "@cascade/shared";
import { type BreakerOverride, defineBreakerOverride } from "./breaker-override.js";
import { readProviderStatus } from "./provider-status.js";

/**
 * What the providers and metrics routes need of the shared breakers and limits: the status view,
 * and an operator's breaker override (the script, then the announcement that makes every worker
 * forget what it knew of that breaker).
 */
export class ProviderStatusStore {
  private readonly overrideBreaker: ReturnType<typeof defineBreakerOverride>;
  private overrideListener: ((breakerId: string, to: string) => void) | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly config: Config,
    private readonly keys: Keys,
    private readonly logger: Logger,
  ) {
    this.overrideBreaker = defineBreakerOverride(redis);
  }

  read() {
    return readProviderStatus(this.redis, this.config, this.keys, (key, problem) =>
      this.logger.warn({ key, problem }, "unexpected value in a breaker or limit hash; shown with defaults"),
    );
  }

  /**
   * Told of every forced state (metrics count it as a breaker transition); "auto" hands the breaker
   * back to its counts without moving it, so it is not one.
   */
  onOverride(listener: (breakerId: string, to: string) => void): void {
    this.overrideListener = listener;
  }

  async override(breakerId: string, state: BreakerOverride, why: string): Promise<void> {
    await this.overrideBreaker(this.keys.breaker(breakerId), state, why);
    if (state !== "auto") this.overrideListener?.(breakerId, state);
    await this.redis.publish(this.keys.breakerChannel, `${breakerId}:${state}`);
  }
}
