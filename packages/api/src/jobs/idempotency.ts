import { type Keys, type RedisClient, sha256Hex } from "@cascade/shared";

export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

export type Reservation =
  | { kind: "new" }
  | { kind: "replay"; jobId: string; reservedAt: number }
  | { kind: "mismatch"; jobId: string };

/**
 * Idempotency-Key per the IETF draft and Stripe: scoped to the tenant, kept 24 h; the same key
 * with the same body replays the first job, with a different body is refused (422).
 */
export class IdempotencyKeys {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  private key(tenant: string, idempotencyKey: string): string {
    return this.keys.idempotency(tenant, sha256Hex(idempotencyKey));
  }

  /** Atomically claims the key for `jobId`, or reports the job that already holds it. */
  async reserve(
    tenant: string,
    idempotencyKey: string,
    bodyHash: string,
    jobId: string,
    now: number,
  ): Promise<Reservation> {
    const key = this.key(tenant, idempotencyKey);
    const value = JSON.stringify({ job_id: jobId, body_sha256: bodyHash, at: now });
    const claimed = await this.redis.set(key, value, "EX", IDEMPOTENCY_TTL_SECONDS, "NX");
    if (claimed === "OK") return { kind: "new" };
    const existing = await this.redis.get(key);
    if (!existing) return this.reserve(tenant, idempotencyKey, bodyHash, jobId, now);
    const record = JSON.parse(existing) as { job_id: string; body_sha256: string; at?: number };
    return record.body_sha256 === bodyHash
      ? { kind: "replay", jobId: record.job_id, reservedAt: record.at ?? 0 }
      : { kind: "mismatch", jobId: record.job_id };
  }

  /** Frees a key whose job could not be enqueued, so the client's retry can go through. */
  async release(tenant: string, idempotencyKey: string): Promise<void> {
    await this.redis.del(this.key(tenant, idempotencyKey));
  }
}
