import { type Keys, QUEUE_NAMES, type RedisClient, sha256Hex } from "@cascade/shared";

export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

export type Reservation =
  | { kind: "new" }
  /** `added`: its job was enqueued (so a job not found is gone, not on its way in). */
  | { kind: "replay"; jobId: string; reservedAt: number; added: boolean }
  | { kind: "mismatch"; jobId: string };

/**
 * Hands a spent key to a new job, but only while it still names the spent job: of two retries
 * racing to reuse one key, exactly one wins and the other sees the winner's reservation.
 * KEYS[1] the idempotency record
 * ARGV[1] the spent job's id, ARGV[2] the new record (JSON), ARGV[3] its TTL in seconds
 * Returns {1} when taken over, else {0, current record or false}.
 */
const TAKE_OVER_LUA = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if not ok or type(record) ~= 'table' or record.job_id ~= ARGV[1] then return {0, current} end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return {1}
`;

/**
 * Deletes a reservation only while it names the given job and that job is not in the queue (a
 * retry and its cut-off first request share the reserved id: one that fails must not free the key
 * of the job the other enqueued, noted `added` or not yet).
 * KEYS[1] the idempotency record, KEYS[2] the job's BullMQ hash; ARGV[1] the job id.
 * Returns 1 when deleted, else 0.
 */
const RELEASE_LUA = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, record = pcall(cjson.decode, current)
if ok and type(record) == 'table' and record.job_id == ARGV[1] and not record.added
  and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/**
 * Notes that a reservation's job is in the queue, only while the record still names that job.
 * KEYS[1] the idempotency record; ARGV[1] the job id. Returns 1 when noted, else 0.
 */
const MARK_ADDED_LUA = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, record = pcall(cjson.decode, current)
if not ok or type(record) ~= 'table' or record.job_id ~= ARGV[1] then return 0 end
record.added = 1
redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL')
return 1
`;

type Commands = RedisClient & {
  cascadeIdempotencyMarkAdded(key: string, jobId: string): Promise<number>;
  cascadeIdempotencyRelease(key: string, jobKey: string, jobId: string): Promise<number>;
  cascadeIdempotencyTakeOver(
    key: string,
    spentJobId: string,
    value: string,
    ttl: number,
  ): Promise<[number, string?]>;
};

interface StoredReservation {
  job_id: string;
  body_sha256: string;
  at?: number;
  added?: number;
}

/**
 * Idempotency-Key per the IETF draft and Stripe: scoped to the tenant, kept 24 h; the same key
 * with the same body replays the first job, with a different body is refused (422).
 */
export class IdempotencyKeys {
  private readonly redis: Commands;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
  ) {
    redis.defineCommand("cascadeIdempotencyTakeOver", { numberOfKeys: 1, lua: TAKE_OVER_LUA });
    redis.defineCommand("cascadeIdempotencyRelease", { numberOfKeys: 2, lua: RELEASE_LUA });
    redis.defineCommand("cascadeIdempotencyMarkAdded", { numberOfKeys: 1, lua: MARK_ADDED_LUA });
    this.redis = redis as Commands;
  }

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
    legacyHash?: string,
  ): Promise<Reservation> {
    const key = this.key(tenant, idempotencyKey);
    const value = JSON.stringify({ job_id: jobId, body_sha256: bodyHash, at: now });
    const claimed = await this.redis.set(key, value, "EX", IDEMPOTENCY_TTL_SECONDS, "NX");
    if (claimed === "OK") return { kind: "new" };
    const existing = await this.redis.get(key);
    if (!existing) return this.reserve(tenant, idempotencyKey, bodyHash, jobId, now, legacyHash);
    return toReservation(existing, bodyHash, legacyHash);
  }

  /**
   * Claims a key whose job no longer exists (it outlived its retention) for `jobId`. When another
   * request took the key over first, answers with that request's reservation instead.
   */
  async takeOver(
    tenant: string,
    idempotencyKey: string,
    spentJobId: string,
    bodyHash: string,
    jobId: string,
    now: number,
  ): Promise<Reservation> {
    const value = JSON.stringify({ job_id: jobId, body_sha256: bodyHash, at: now });
    const [taken, current] = await this.redis.cascadeIdempotencyTakeOver(
      this.key(tenant, idempotencyKey),
      spentJobId,
      value,
      IDEMPOTENCY_TTL_SECONDS,
    );
    if (taken === 1) return { kind: "new" };
    if (!current) return this.reserve(tenant, idempotencyKey, bodyHash, jobId, now);
    return toReservation(current, bodyHash);
  }

  /**
   * Notes that the key's job is in the queue: a replay that then finds no job knows it is gone
   * (removed by an operator, or past a retention shorter than the key's 24 h) rather than on its
   * way in, and reuses the key at once instead of answering 409 for the enqueue window.
   */
  async markAdded(tenant: string, idempotencyKey: string, jobId: string): Promise<void> {
    await this.redis.cascadeIdempotencyMarkAdded(this.key(tenant, idempotencyKey), jobId);
  }

  /**
   * Frees a key whose job could not be enqueued, so the client's retry can go through; only while
   * it still names that job (another request may have taken it over meanwhile).
   */
  async release(tenant: string, idempotencyKey: string, jobId: string): Promise<void> {
    await this.redis.cascadeIdempotencyRelease(
      this.key(tenant, idempotencyKey),
      `${this.keys.bullPrefix}:${QUEUE_NAMES.completions}:${jobId}`,
      jobId,
    );
  }
}

function toReservation(stored: string, bodyHash: string, legacyHash?: string): Reservation {
  const record = JSON.parse(stored) as StoredReservation;
  return record.body_sha256 === bodyHash || (legacyHash !== undefined && record.body_sha256 === legacyHash)
    ? { kind: "replay", jobId: record.job_id, reservedAt: record.at ?? 0, added: record.added === 1 }
    : { kind: "mismatch", jobId: record.job_id };
}
