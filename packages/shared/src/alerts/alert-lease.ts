import { randomBytes } from "node:crypto";
import type { RedisClient } from "../redis/connection.js";

/**
 * Renews the lease if this holder still has it.
 * KEYS[1] lease key. ARGV[1] holder token; ARGV[2] TTL (ms). Returns 1 when renewed, else 0.
 */
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/**
 * Gives the lease up if this holder still has it (never another's).
 * KEYS[1] lease key. ARGV[1] holder token. Returns 1 when released, else 0.
 */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

const RENEW = "cascadeAlertLeaseRenew";
const RELEASE = "cascadeAlertLeaseRelease";
type LeaseCommand = (key: string, ...args: Array<string | number>) => Promise<number>;

/**
 * A Redis lease (SET NX PX with a random token): at most one holder at a time, renewed by the
 * holder on each tick, expiring on its own when the holder dies.
 */
export class RedisLease {
  private readonly token = randomBytes(12).toString("hex");
  private held = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly ttlMs: number,
  ) {
    if (!(RENEW in redis)) redis.defineCommand(RENEW, { numberOfKeys: 1, lua: RENEW_SCRIPT });
    if (!(RELEASE in redis)) redis.defineCommand(RELEASE, { numberOfKeys: 1, lua: RELEASE_SCRIPT });
  }

  private command(name: string): LeaseCommand {
    return ((this.redis as unknown as Record<string, LeaseCommand>)[name] as LeaseCommand).bind(this.redis);
  }

  /** Whether this process held the lease at its last acquire or renew. */
  get holding(): boolean {
    return this.held;
  }

  /** Renews the lease if held, else tries to take it. Returns whether this process holds it. */
  async acquireOrRenew(): Promise<boolean> {
    if (this.held && (await this.command(RENEW)(this.key, this.token, this.ttlMs)) === 1) return true;
    this.held = (await this.redis.set(this.key, this.token, "PX", this.ttlMs, "NX")) === "OK";
    return this.held;
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.command(RELEASE)(this.key, this.token);
  }
}
