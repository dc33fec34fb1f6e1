import { randomBytes } from "node:crypto";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { changedByDecoding } from "../utf8.js";
import { MAX_LINE_BYTES } from "./batch-types.js";

/** Uploads are stored as a Redis list of chunks of about this size. */
export const FILE_CHUNK_BYTES = 1024 * 1024;
/** An upload in progress keeps its partial content for at most this long (a crashed API's leftovers). */
const UPLOAD_TTL_SECONDS = 3600;

export type FilePurpose = "batch" | "batch_output";

/** OpenAI's File object (https://platform.openai.com/docs/api-reference/files/object). */
export interface FileObject {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  filename: string;
  purpose: FilePurpose;
  status: "processed";
  status_details: null;
  expires_at: number | null;
}

/** An upload over the size cap; the API answers 413. */
export class FileTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the file is larger than the ${Math.round(maxBytes / 1024 / 1024)} MB limit`);
    this.name = "FileTooLargeError";
  }
}

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

/** `file-` + time + 80 random bits, sortable by creation like every other Cascade id. */
export function newFileId(now = Date.now()): string {
  let random = "";
  for (const byte of randomBytes(16)) random += alphabet[byte % 36];
  return `file-${now.toString(36)}${random}`;
}

function toFileObject(hash: Record<string, string>): FileObject | undefined {
  if (!hash.id) return undefined;
  return {
    id: hash.id,
    object: "file",
    bytes: Number(hash.bytes ?? 0),
    created_at: Number(hash.created_at ?? 0),
    filename: hash.filename ?? "",
    purpose: (hash.purpose ?? "batch") as FilePurpose,
    status: "processed",
    status_details: null,
    expires_at: hash.expires_at ? Number(hash.expires_at) : null,
  };
}

export interface ListPage<T> {
  data: T[];
  has_more: boolean;
}

/** A page in OpenAI's list shape: the next page is `?after=<last_id>` while `has_more`. */
export function listObject<T extends { id: string }>(page: ListPage<T>) {
  return {
    object: "list" as const,
    data: page.data,
    first_id: page.data[0]?.id ?? null,
    last_id: page.data[page.data.length - 1]?.id ?? null,
    has_more: page.has_more,
  };
}

export interface ListOptions {
  limit: number;
  after?: string | undefined;
  order: "asc" | "desc";
}

/**
 * Pages through an index of ids (a sorted set whose members all score 0, so it is ordered by id,
 * and Cascade ids start with their creation time) with OpenAI's `after` cursor. Ids whose record
 * has expired are dropped from the index on the way. `after` is a position in that order: it need
 * not be in the index still (a client deleting what it lists, an item expired between pages).
 */
export async function listIndex<T>(
  redis: RedisClient,
  indexKey: string,
  options: ListOptions,
  load: (ids: string[]) => Promise<Array<T | undefined>>,
  keep: (item: T) => boolean = () => true,
): Promise<ListPage<T>> {
  const found: T[] = [];
  let cursor = options.after;
  const page = Math.min(Math.max(options.limit + 1, 20), 1000);
  while (found.length <= options.limit) {
    const ids =
      options.order === "desc"
        ? await redis.zrevrangebylex(indexKey, cursor ? `(${cursor}` : "+", "-", "LIMIT", 0, page)
        : await redis.zrangebylex(indexKey, cursor ? `(${cursor}` : "-", "+", "LIMIT", 0, page);
    if (ids.length === 0) break;
    const items = await load(ids);
    const stale = ids.filter((_, index) => items[index] === undefined);
    if (stale.length) await redis.zrem(indexKey, ...stale);
    for (const item of items) if (item !== undefined && keep(item)) found.push(item);
    cursor = ids[ids.length - 1];
    if (ids.length < page) break;
  }
  return { data: found.slice(0, options.limit), has_more: found.length > options.limit };
}

/** A tenant's uploaded files may hold this many MiB at once unless its config says otherwise. */
export const DEFAULT_FILE_STORAGE_MB = 1024;

/** An upload that would take its tenant's files past `max_file_storage_mb`. */
export class FileStorageLimitError extends Error {
  constructor(
    readonly heldBytes: number,
    readonly limitBytes: number,
  ) {
    super(`the tenant's files hold ${heldBytes} bytes of ${limitBytes}`);
  }
}

/**
 * Lua shared by the scripts below. `held` sums a tenant's file sizes (`<bytes>:<expires_at>` by
 * file id, or `pending:<id>` for an upload whose chunks are being written), dropping entries past
 * their time, leaving out the entry `skip`. `backfill` gives the tenant's files uploaded before
 * sizes were kept an entry, once (the `_backfilled` mark), from their hashes. `othersHeld` is
 * both: what the tenant holds besides upload `id` (and that upload's entry name, and Redis's now).
 */
const FILE_SIZES_LUA = `
local function held(sizes, now, skip)
  local total = 0
  local entries = redis.call('HGETALL', sizes)
  for i = 1, #entries, 2 do
    local field = entries[i]
    if field ~= '_backfilled' and field ~= skip then
      local bytes, expires = string.match(entries[i + 1], '^(%d+):(%d+)$')
      if bytes and tonumber(expires) > now then
        total = total + tonumber(bytes)
      else
        redis.call('HDEL', sizes, field)
      end
    end
  end
  return total
end
local function keepFor(sizes, seconds)
  if redis.call('TTL', sizes) < seconds then redis.call('EXPIRE', sizes, seconds) end
end
local function backfill(index, sizes, filePrefix, now)
  if redis.call('HEXISTS', sizes, '_backfilled') == 1 then return end
  local longest = 0
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if redis.call('HEXISTS', sizes, id) == 0 then
      local file = redis.call('HMGET', filePrefix .. id, 'purpose', 'bytes', 'expires_at')
      local expires = tonumber(file[3] or '')
      if file[1] == 'batch' and tonumber(file[2] or '') and expires and expires > now then
        redis.call('HSET', sizes, id, file[2] .. ':' .. file[3])
        if expires - now > longest then longest = expires - now end
      end
    end
  end
  redis.call('HSET', sizes, '_backfilled', '1')
  keepFor(sizes, math.max(longest, 1))
end
local function othersHeld(index, sizes, filePrefix, id)
  local now = tonumber(redis.call('TIME')[1])
  backfill(index, sizes, filePrefix, now)
  local pending = 'pending:' .. id
  return now, pending, held(sizes, now, pending)
end
`;

/**
 * append-upload — writes one chunk of an upload if its tenant's files, other uploads in flight
 * and this upload so far fit the limit. KEYS: 1 upload data, 2 tenant's file index, 3 tenant's
 * file sizes. ARGV: 1 file id, 2 the chunk, 3 the upload's bytes with this chunk, 4 the limit in
 * bytes, 5 the file hashes' key prefix, 6 the upload's TTL. Returns {1, held} or {0, held}.
 */
const APPEND_UPLOAD_LUA = `${FILE_SIZES_LUA}
local now, pending, others = othersHeld(KEYS[2], KEYS[3], ARGV[5], ARGV[1])
local bytes, limit, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
if others + bytes > limit then return {0, others} end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[3], pending, bytes .. ':' .. (now + ttl))
keepFor(KEYS[3], ttl)
return {1, others}
`;

/**
 * commit-file — makes an upload a file of its tenant if the tenant's other files and uploads in
 * flight leave room for it. KEYS: 1 file hash, 2 file data, 3 tenant's file index, 4 tenant's
 * file sizes. ARGV: 1 file id, 2 bytes, 3 ttl seconds, 4 the limit in bytes, 5 the file hashes'
 * key prefix, 6… the hash's field/value pairs. Returns {1, held} when committed, {0, held} when
 * over the limit.
 */
const COMMIT_FILE_LUA = `${FILE_SIZES_LUA}
local now, pending, others = othersHeld(KEYS[3], KEYS[4], ARGV[5], ARGV[1])
local bytes, ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if others + bytes > limit then return {0, others} end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('HDEL', KEYS[4], pending)
redis.call('HSET', KEYS[4], ARGV[1], bytes .. ':' .. (now + ttl))
keepFor(KEYS[4], ttl)
return {1, others}
`;

/**
 * discard-upload — drops an upload's chunks and its room in the limit, unless it was committed
 * after all (a commit whose reply was lost to a timeout): then the file keeps its content.
 * KEYS: 1 file hash, 2 file data, 3 tenant's file sizes. ARGV: 1 file id.
 */
const DISCARD_UPLOAD_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('UNLINK', KEYS[2])
redis.call('HDEL', KEYS[3], 'pending:' .. ARGV[1])
return 1
`;

type Command = (...args: Array<string | number | Buffer>) => Promise<unknown>;

/**
 * Files of the Files API, in Redis: metadata in a hash, content as a list of ~1 MiB chunks, and a
 * per-tenant index. Redis rather than disk because API and workers may run on different machines
 * and Redis is what they share (docs/decisions/0009-batches.md). Keys expire with the file. A
 * tenant's uploads are held to its `max_file_storage_mb` (their sizes in one hash per tenant).
 */
export class FileStore {
  private readonly commitFile: Command;
  private readonly appendUpload: Command;
  private readonly discardUpload: Command;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly defaultTtlSeconds: number,
  ) {
    if (!("cascadeCommitFile" in redis)) {
      redis.defineCommand("cascadeCommitFile", { numberOfKeys: 4, lua: COMMIT_FILE_LUA });
    }
    if (!("cascadeAppendUpload" in redis)) {
      redis.defineCommand("cascadeAppendUpload", { numberOfKeys: 3, lua: APPEND_UPLOAD_LUA });
    }
    if (!("cascadeDiscardUpload" in redis)) {
      redis.defineCommand("cascadeDiscardUpload", { numberOfKeys: 3, lua: DISCARD_UPLOAD_LUA });
    }
    const table = redis as unknown as Record<string, Command>;
    this.commitFile = table.cascadeCommitFile?.bind(redis) as Command;
    this.appendUpload = table.cascadeAppendUpload?.bind(redis) as Command;
    this.discardUpload = table.cascadeDiscardUpload?.bind(redis) as Command;
  }

  /** Bytes of the tenant's uploaded files that have not expired or been deleted. */
  async heldBytes(tenant: string): Promise<number> {
    const sizes = (await this.redis.hvals(this.keys.fileBytes(tenant))) as string[];
    const now = Math.floor(Date.now() / 1000);
    let held = 0;
    for (const entry of sizes) {
      const [bytes, expires] = entry.split(":").map(Number);
      if (Number.isFinite(bytes) && Number(expires) > now) held += bytes as number;
    }
    return held;
  }

  /**
   * Stores an upload's content as it streams in, under a fresh id, invisible until `commit`
   * (and gone within an hour if never committed). Past `maxBytes` it stops, deletes what it wrote
   * and throws FileTooLargeError; a chunk that would take the tenant's files, its other uploads in
   * flight and this one past `limitBytes` is not written (FileStorageLimitError).
   */
  async upload(
    content: AsyncIterable<Buffer>,
    maxBytes: number,
    quota: { tenant: string; limitBytes: number },
  ): Promise<{ id: string; bytes: number }> {
    const id = newFileId();
    const dataKey = this.keys.fileData(id);
    let written = 0;
    let bytes = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let redisFailed = false;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const chunk = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      let appended: [number, number];
      try {
        appended = (await this.appendUpload(
          dataKey,
          this.keys.fileIndex(quota.tenant),
          this.keys.fileBytes(quota.tenant),
          id,
          chunk,
          written + chunk.length,
          quota.limitBytes,
          this.keys.file(""),
          UPLOAD_TTL_SECONDS,
        )) as [number, number];
      } catch (error) {
        redisFailed = true;
        throw error;
      }
      if (appended[0] !== 1) throw new FileStorageLimitError(appended[1], quota.limitBytes);
      written += chunk.length;
    };
    try {
      for await (const piece of content) {
        bytes += piece.length;
        if (bytes > maxBytes) throw new FileTooLargeError(maxBytes);
        pending.push(piece);
        pendingBytes += piece.length;
        if (pendingBytes >= FILE_CHUNK_BYTES) await flush();
      }
      await flush();
    } catch (error) {
      // When Redis itself failed the write, the caller is not held for a second timeout on the
      // delete: it goes on in the background, and the upload's TTL removes what it misses.
      const discarding = this.discard(id, quota.tenant);
      if (!redisFailed) await discarding;
      throw error;
    }
    return { id, bytes };
  }

  /**
   * Drops an upload that will not be committed (and its room in the tenant's limit); one that was
   * committed after all, its reply lost, keeps its content.
   */
  async discard(id: string, tenant: string): Promise<void> {
    await this.discardUpload(
      this.keys.file(id),
      this.keys.fileData(id),
      this.keys.fileBytes(tenant),
      id,
    ).catch(() => {});
  }

  /**
   * Makes an upload a file of `tenant`, expiring after `ttlSeconds` (default: the retention time);
   * FileStorageLimitError (nothing committed) when the tenant's live uploads and this one would
   * pass `limitBytes`.
   */
  async commit(
    tenant: string,
    upload: { id: string; bytes: number },
    input: {
      filename: string;
      purpose: FilePurpose;
      ttlSeconds?: number | undefined;
      limitBytes: number;
    },
  ): Promise<FileObject> {
    const { id } = upload;
    const ttl = input.ttlSeconds ?? this.defaultTtlSeconds;
    const createdAt = Math.floor(Date.now() / 1000);
    const fields = {
      id,
      tenant,
      bytes: String(upload.bytes),
      created_at: String(createdAt),
      filename: input.filename,
      purpose: input.purpose,
      expires_at: String(createdAt + ttl),
    };
    const [committed, held] = (await this.commitFile(
      this.keys.file(id),
      this.keys.fileData(id),
      this.keys.fileIndex(tenant),
      this.keys.fileBytes(tenant),
      id,
      upload.bytes,
      ttl,
      input.limitBytes,
      this.keys.file(""),
      ...Object.entries(fields).flat(),
    )) as [number, number];
    if (committed !== 1) throw new FileStorageLimitError(held, input.limitBytes);
    return toFileObject(fields) as FileObject;
  }

  /** The file if it exists and belongs to `tenant` (anything else is a 404). */
  async get(tenant: string, id: string): Promise<FileObject | undefined> {
    const hash = (await this.redis.hgetall(this.keys.file(id))) as Record<string, string>;
    return hash.tenant === tenant ? toFileObject(hash) : undefined;
  }

  async list(
    tenant: string,
    options: ListOptions & { purpose?: string | undefined },
  ): Promise<ListPage<FileObject>> {
    return listIndex(
      this.redis,
      this.keys.fileIndex(tenant),
      options,
      async (ids) => {
        const pipeline = this.redis.pipeline();
        for (const id of ids) pipeline.hgetall(this.keys.file(id));
        const replies = (await pipeline.exec()) ?? [];
        return replies.map(([, hash]) => toFileObject((hash ?? {}) as Record<string, string>));
      },
      (file) => options.purpose === undefined || file.purpose === options.purpose,
    );
  }

  /** The file's content, about 1 MiB per step (read `get` first: this does not check the tenant). */
  content(id: string): AsyncGenerator<Buffer> {
    return readChunks(this.redis, this.keys.fileData(id));
  }

  /** Deletes the file; false when there is no such file for this tenant. */
  async delete(tenant: string, id: string): Promise<boolean> {
    if (!(await this.get(tenant, id))) return false;
    await this.redis
      .multi()
      .unlink(this.keys.file(id), this.keys.fileData(id))
      .zrem(this.keys.fileIndex(tenant), id)
      .hdel(this.keys.fileBytes(tenant), id)
      .exec();
    return true;
  }
}

/** A stored file went away (deleted, expired) while it was being read: what was read is not all of it. */
export class FileChangedError extends Error {
  constructor(dataKey: string) {
    super(`${dataKey} was deleted or expired while it was being read`);
    this.name = "FileChangedError";
  }
}

/**
 * The content of a stored file (or any list of chunks), about 1 MiB per step. A file that goes
 * away mid-read throws FileChangedError rather than end early: a download whose Content-Length was
 * sent must break off (not stall the client), and a reader must not take a part for the whole.
 */
export async function* readChunks(redis: RedisClient, dataKey: string): AsyncGenerator<Buffer> {
  const length = await redis.llen(dataKey);
  if (length === 0) return;
  // Upload chunks are ~1 MiB; output files hold one short line per element: read more of those.
  const first = await redis.lrangeBuffer(dataKey, 0, 0);
  if (!first[0]) throw new FileChangedError(dataKey);
  const firstSize = first[0].length;
  yield first[0];
  const perRead = Math.max(1, Math.min(2000, Math.floor(FILE_CHUNK_BYTES / Math.max(firstSize, 1))));
  for (let start = 1; start < length; start += perRead) {
    const chunks = await redis.lrangeBuffer(dataKey, start, start + perRead - 1);
    if (chunks.length < Math.min(perRead, length - start)) throw new FileChangedError(dataKey);
    yield chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  }
}

/** A line of a JSONL file: 1-based number, text without the line break. */
export interface FileLine {
  line: number;
  text: string;
  /** The line is longer than MAX_LINE_BYTES; its text is not decoded. */
  tooLong: boolean;
  /** The line's bytes are not UTF-8: decoded, they would hold U+FFFD in their place. */
  notUtf8?: true;
}

const NEWLINE = 0x0a;

/** The UTF-8 byte order mark some editors (PowerShell 5, Notepad) start a file with. */
const BOM = [0xef, 0xbb, 0xbf];

function decodeLine(buffer: Buffer, from: number, end: number, line: number): FileLine {
  let start = from;
  // A file's BOM is no part of its first line's JSON.
  if (line === 1 && BOM.every((byte, offset) => buffer[start + offset] === byte)) start += BOM.length;
  let stop = end;
  if (stop > start && buffer[stop - 1] === 0x0d) stop -= 1;
  if (stop - start > MAX_LINE_BYTES) return { line, text: "", tooLong: true };
  const text = buffer.toString("utf8", start, stop);
  if (changedByDecoding(text, buffer.subarray(start, stop)))
    return { line, text, tooLong: false, notUtf8: true };
  return { line, text, tooLong: false };
}

/**
 * The lines of a stored file in order, from `afterLine` on (lines up to it are skipped without
 * being decoded). A line break never falls inside a UTF-8 sequence, so splitting bytes is safe.
 */
export async function* readLines(
  redis: RedisClient,
  dataKey: string,
  afterLine = 0,
): AsyncGenerator<FileLine> {
  let carry: Buffer | undefined;
  let line = 0;
  for await (const chunk of readChunks(redis, dataKey)) {
    const buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const end = buffer.indexOf(NEWLINE, start);
      if (end === -1) break;
      line += 1;
      if (line > afterLine) yield decodeLine(buffer, start, end, line);
      start = end + 1;
    }
    carry = start < buffer.length ? buffer.subarray(start) : undefined;
    if (carry && carry.length > MAX_LINE_BYTES + 2) {
      // A runaway line (up to the whole file): report it and stop, rather than buffer it all.
      yield { line: line + 1, text: "", tooLong: true };
      return;
    }
  }
  if (carry && carry.length > 0) {
    line += 1;
    if (line > afterLine) yield decodeLine(carry, 0, carry.length, line);
  }
}
