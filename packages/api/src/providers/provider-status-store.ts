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
   * Told when an override moves the state in force (metrics count it as a breaker transition):
   * forcing a state it was not in, or "auto" handing a forced breaker back to a state of its own
   * that differs (released from a forced open into closed counts as `closed`).
   */
  onOverride(listener: (breakerId: string, to: string) => void): void {
    this.overrideListener = listener;
  }

  async override(breakerId: string, state: BreakerOverride, why: string): Promise<void> {
    const { from, to } = await this.overrideBreaker(this.keys.breaker(breakerId), state, why);
    if (from !== to) this.overrideListener?.(breakerId, to);
    await this.redis.publish(this.keys.breakerChannel, `${breakerId}:${state}`);
  }
}
