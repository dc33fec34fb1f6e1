import { randomBytes } from "node:crypto";

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

/** Random bytes per id (only 80 bits of them count: each byte maps to one of 36 characters). */
const ID_BYTES = 16;
/**
 * Random bytes drawn at once: `randomBytes` costs about as much for 4,096 bytes as for 16 (the
 * call, not the bytes, is the cost), so 256 ids share one call. Each byte is used once, in order,
 * and the pool is refilled from the CSPRNG when used up: ids stay unpredictable and unique.
 */
const POOL_BYTES = 4096;

/**
 * Fresh random bytes, each already mapped to its character's code (one pass per pool), so an id's
 * random part is one `latin1` slice of the pool instead of 16 string concatenations.
 */
function characterPool(): Buffer {
  const bytes = randomBytes(POOL_BYTES);
  for (let index = 0; index < POOL_BYTES; index++)
    bytes[index] = alphabet.charCodeAt((bytes[index] as number) % 36);
  return bytes;
}

let pool = characterPool();
let offset = 0;

/** Sortable-ish unique id: time prefix then 80 random bits, e.g. `job_lzx1c2a9k3m...`. */
export function newId(prefix: string, now = Date.now()): string {
  if (offset + ID_BYTES > POOL_BYTES) {
    // A new buffer, not a refill in place: nothing that held a slice of the old one sees it change.
    pool = characterPool();
    offset = 0;
  }
  const random = pool.toString("latin1", offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return `${prefix}_${now.toString(36)}${random}`;
}

export type IdGenerator = (prefix: string) => string;

/**
 * Whether `id` has the shape of an id Cascade makes after `prefix` (`file-`, `batch_`): its
 * creation time and random characters, in base 36. A list's `after` cursor of any other shape
 * names nothing that was ever listed.
 */
export function hasIdShape(prefix: string, id: string): boolean {
  return id.startsWith(prefix) && /^[0-9a-z]{20,64}$/.test(id.slice(prefix.length));
}

/**
 * Whether `id` can name a job (`job_…`: POST /v1/jobs's and a batch line's). A path segment is
 * a key suffix under the queue's prefix, where BullMQ keeps its own keys too (`events`, `id`,
 * `completed`…): anything else is no job, answered 404 without asking Redis.
 */
export function isJobId(id: string): boolean {
  return /^job_[A-Za-z0-9_-]+$/.test(id);
}
