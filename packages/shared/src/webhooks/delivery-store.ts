import type { ListPage } from "../batches/file-store.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import {
  DELIVERY_STATUSES,
  type DeliveryStatus,
  type WebhookDelivery,
  type WebhookEventType,
  type WebhookJobData,
} from "./delivery.js";

/**
 * Creates a delivery record if absent, then moves it to a new status and keeps the tenant's
 * per-status indexes (sorted sets scored by created_at) in step.
 * KEYS[1] record hash; KEYS[2], KEYS[3], KEYS[4] the tenant's pending, delivered, dead indexes.
 * ARGV[1] static fields as a JSON object of strings (used only when the record is absent)
 * ARGV[2] new status; ARGV[3] required current status ("" = any; with one, a missing record fails)
 * ARGV[4] "1" when an HTTP attempt was made: attempts += 1, last_status = ARGV[5], last_error = ARGV[6]
 * ARGV[7] retention seconds; ARGV[8] created_at (unix s) before which an index entry may be stale;
 * ARGV[9] the record keys' prefix (the record of `id` is ARGV[9] .. id, in the same slot).
 * An index entry goes once its record has expired: a record lives `retention` from its last
 * change, so a delivery created long ago (retried for hours, or retried again by hand) stays
 * listed while it does. Each call looks at no more than 50 of each index's old entries (a list
 * drops those it finds expired too).
 * Returns the record as HGETALL does (less the body snapshot), or false when ARGV[3] did not match.
 */
const TRANSITION_SCRIPT = `
-- A record may hold only a body snapshot so far (kept before its first transition).
local exists = redis.call('HEXISTS', KEYS[1], 'id') == 1
if ARGV[3] ~= '' then
  if not exists or redis.call('HGET', KEYS[1], 'status') ~= ARGV[3] then return false end
end
if not exists then
  for field, value in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], field, value) end
  redis.call('HSET', KEYS[1], 'attempts', '0', 'last_status', '', 'last_error', '')
end
local previous = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'last_status', ARGV[5], 'last_error', ARGV[6])
end
local index = { pending = KEYS[2], delivered = KEYS[3], dead = KEYS[4] }
local id = redis.call('HGET', KEYS[1], 'id')
if previous and previous ~= ARGV[2] and index[previous] then redis.call('ZREM', index[previous], id) end
redis.call('ZADD', index[ARGV[2]], tonumber(redis.call('HGET', KEYS[1], 'created_at')), id)
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', index[ARGV[2]], ARGV[7])
for i = 2, 4 do
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[8], 'LIMIT', 0, 50)) do
    if redis.call('EXISTS', ARGV[9] .. old) == 0 then redis.call('ZREM', KEYS[i], old) end
  end
end
local flat, record = redis.call('HGETALL', KEYS[1]), {}
for i = 1, #flat, 2 do
  if flat[i] ~= 'body' then
    record[#record + 1] = flat[i]
    record[#record + 1] = flat[i + 1]
  end
end
return record
`;

const COMMAND = "cascadeWebhookDeliveryTransition";

/** Reads of one list page at most, each after dropping the expired entries the one before met. */
const MAX_LIST_ROUNDS = 5;

/**
 * Keeps the first body a delivery was sent with, so every later attempt (retries, a manual
 * retry) sends the same bytes even though the body is built from the stored job when first sent.
 * KEYS[1] record hash. ARGV[1] the body this attempt would send; ARGV[2] retention seconds.
 * Returns the body to send: the one kept before, else ARGV[1] (now kept).
 */
const SNAPSHOT_SCRIPT = `
redis.call('HSETNX', KEYS[1], 'body', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'body')
`;

const SNAPSHOT_COMMAND = "cascadeWebhookDeliverySnapshot";

/** The record's fields as the API shows them (not the body snapshot, which can be large). */
const RECORD_FIELDS = [
  "id",
  "tenant",
  "job_id",
  "url",
  "event_type",
  "status",
  "attempts",
  "last_status",
  "last_error",
  "created_at",
  "webhook_id",
] as const;

type TransitionCommand = (...args: Array<string | number>) => Promise<string[] | null>;
type SnapshotCommand = (...args: Array<string | number>) => Promise<string>;

/** A record as stored, with the tenant it belongs to. */
export interface StoredDelivery {
  tenant: string;
  delivery: WebhookDelivery;
}

/** What an HTTP attempt left behind. */
export interface AttemptResult {
  httpStatus: number | undefined;
  error: string | undefined;
}

function toStored(fields: Record<string, string>): StoredDelivery | undefined {
  if (!fields.id) return undefined;
  return {
    tenant: fields.tenant ?? "",
    delivery: {
      object: "webhook_delivery",
      id: fields.id,
      job_id: fields.job_id ?? "",
      url: fields.url ?? "",
      event_type: fields.event_type as WebhookEventType,
      status: fields.status as DeliveryStatus,
      attempts: Number(fields.attempts ?? 0),
      last_status: fields.last_status ? Number(fields.last_status) : null,
      last_error: fields.last_error || null,
      created_at: Number(fields.created_at ?? 0),
      webhook_id: fields.webhook_id ?? "",
    },
  };
}

function pairsToObject(flat: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2)
    fields[flat[index] as string] = flat[index + 1] ?? "";
  return fields;
}

/**
 * How long a delivery record lives from its last change: the job retention, and at least the
 * longest wait between two attempts and an hour more (a delivery may also wait in a backlog, go
 * back for a busy destination, or be recovered from a crashed worker), so that a record (and the
 * body its retries must send again) does not expire while its delivery waits to be retried.
 */
export function deliveryRetentionSeconds(jobRetentionS: number, retryScheduleMs: readonly number[]): number {
  return Math.max(jobRetentionS, Math.ceil(Math.max(0, ...retryScheduleMs) / 1000) + 3600);
}

/**
 * Delivery records: one hash per delivery plus per-tenant, per-status indexes, kept for the job
 * retention time. The BullMQ webhook job holds the payload and drives the retries; this record is
 * what the API lists and what a person reads to see why a delivery died.
 */
export class WebhookDeliveryStore {
  private readonly transitionCommand: TransitionCommand;
  private readonly snapshotCommand: SnapshotCommand;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 4, lua: TRANSITION_SCRIPT });
    const command = (redis as unknown as Record<string, TransitionCommand>)[COMMAND] as TransitionCommand;
    this.transitionCommand = command.bind(redis);
    if (!(SNAPSHOT_COMMAND in redis))
      redis.defineCommand(SNAPSHOT_COMMAND, { numberOfKeys: 1, lua: SNAPSHOT_SCRIPT });
    const snapshot = (redis as unknown as Record<string, SnapshotCommand>)[
      SNAPSHOT_COMMAND
    ] as SnapshotCommand;
    this.snapshotCommand = snapshot.bind(redis);
  }

  private indexKeys(tenant: string): string[] {
    return DELIVERY_STATUSES.map((status) => this.keys.webhookDeliveryIndex(tenant, status));
  }

  private async transition(
    tenant: string,
    id: string,
    args: {
      fields?: WebhookJobData;
      status: DeliveryStatus;
      expected?: DeliveryStatus;
      attempt?: AttemptResult;
    },
  ): Promise<WebhookDelivery | undefined> {
    const data = args.fields;
    const fields = data
      ? {
          id: data.delivery_id,
          tenant: data.tenant,
          job_id: data.job_id,
          url: data.url,
          event_type: data.event_type,
          webhook_id: data.webhook_id,
          created_at: String(data.created_at),
        }
      : {};
    const oldest = Math.floor(this.now() / 1000) - this.retentionSeconds;
    const reply = await this.transitionCommand(
      this.keys.webhookDelivery(id),
      ...this.indexKeys(tenant),
      JSON.stringify(fields),
      args.status,
      args.expected ?? "",
      args.attempt ? "1" : "0",
      args.attempt?.httpStatus !== undefined ? String(args.attempt.httpStatus) : "",
      (args.attempt?.error ?? "").slice(0, 1000),
      this.retentionSeconds,
      oldest,
      this.keys.webhookDelivery(""),
    );
    return reply ? toStored(pairsToObject(reply))?.delivery : undefined;
  }

  /** A webhook worker took the delivery: make sure the record exists, status pending. */
  async started(data: WebhookJobData): Promise<void> {
    await this.transition(data.tenant, data.delivery_id, { fields: data, status: "pending" });
  }

  /** Records one HTTP attempt and the status it leaves the delivery in. */
  async attempted(data: WebhookJobData, status: DeliveryStatus, attempt: AttemptResult): Promise<void> {
    await this.transition(data.tenant, data.delivery_id, { fields: data, status, attempt });
  }

  /** Compare-and-set of the status; undefined when the record is missing or not in `from`. */
  async move(
    tenant: string,
    id: string,
    from: DeliveryStatus,
    to: DeliveryStatus,
  ): Promise<WebhookDelivery | undefined> {
    return this.transition(tenant, id, { status: to, expected: from });
  }

  /** The body the delivery was first sent with, if it has been sent. */
  async sentBody(id: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.webhookDelivery(id), "body")) ?? undefined;
  }

  /** Keeps `body` as the delivery's body unless one was kept before; returns the one to send. */
  async keepBody(id: string, body: string): Promise<string> {
    return this.snapshotCommand(this.keys.webhookDelivery(id), body, this.retentionSeconds);
  }

  async get(id: string): Promise<StoredDelivery | undefined> {
    const values = await this.redis.hmget(this.keys.webhookDelivery(id), ...RECORD_FIELDS);
    const fields: Record<string, string> = {};
    for (const [index, name] of RECORD_FIELDS.entries()) {
      const value = values[index];
      if (value !== null && value !== undefined) fields[name] = value;
    }
    return toStored(fields);
  }

  /**
   * A tenant's deliveries, newest first (by created_at, then id), `limit` at a time: with `after`
   * (a delivery id, OpenAI's cursor), those listed after it. Undefined when `after` names no
   * delivery of this tenant.
   */
  async list(
    tenant: string,
    status: DeliveryStatus | undefined,
    limit: number,
    after?: string,
  ): Promise<ListPage<WebhookDelivery> | undefined> {
    let cursor: { score: number; id: string } | undefined;
    if (after !== undefined) {
      const record = await this.get(after);
      if (record?.tenant !== tenant) return undefined;
      cursor = { score: record.delivery.created_at, id: after };
    }
    const statuses = status ? [status] : DELIVERY_STATUSES;
    // An index entry whose record has expired is dropped here and the page read again, so a page
    // is never empty while more follow (the transition script drops a few at each change only).
    for (let round = 0; ; round++) {
      const page = await this.readPage(tenant, statuses, limit, cursor);
      const gone = page.chosen.filter((_, index) => page.records[index] === undefined);
      if (gone.length > 0 && round < MAX_LIST_ROUNDS) {
        await Promise.all(gone.map((entry) => this.redis.zrem(entry.key, entry.id)));
        continue;
      }
      const data = page.records
        .filter((record): record is StoredDelivery => record?.tenant === tenant)
        .map((record) => record.delivery)
        .filter((delivery) => !status || delivery.status === status);
      return { data, has_more: page.more };
    }
  }

  /** One read of a page: the index entries it takes, their records (undefined: expired), and whether more follow. */
  private async readPage(
    tenant: string,
    statuses: readonly DeliveryStatus[],
    limit: number,
    cursor: { score: number; id: string } | undefined,
  ): Promise<{
    chosen: Array<{ id: string; score: number; key: string }>;
    records: Array<StoredDelivery | undefined>;
    more: boolean;
  }> {
    // One more than asked for, to know whether there are more; past a cursor, also the entries
    // of its second (scores are whole seconds: the cursor's ties are passed over by id).
    const ranges = await Promise.all(
      statuses.map(async (each) => {
        const key = this.keys.webhookDeliveryIndex(tenant, each);
        if (!cursor) return { key, flat: await this.redis.zrevrange(key, 0, limit, "WITHSCORES") };
        const ties = await this.redis.zcount(key, cursor.score, cursor.score);
        const flat = await this.redis.zrevrangebyscore(
          key,
          cursor.score,
          "-inf",
          "WITHSCORES",
          "LIMIT",
          0,
          limit + 1 + ties,
        );
        return { key, flat };
      }),
    );
    const entries: Array<{ id: string; score: number; key: string }> = [];
    for (const { key, flat } of ranges) {
      for (let index = 0; index + 1 < flat.length; index += 2) {
        const entry = { id: flat[index] as string, score: Number(flat[index + 1]), key };
        if (!cursor || entry.score < cursor.score || (entry.score === cursor.score && entry.id < cursor.id))
          entries.push(entry);
      }
    }
    entries.sort((left, right) => right.score - left.score || (left.id < right.id ? 1 : -1));
    const chosen = entries.slice(0, limit);
    const records = await Promise.all(chosen.map((entry) => this.get(entry.id)));
    return { chosen, records, more: entries.length > limit };
  }
}
