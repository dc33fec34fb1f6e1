import { randomBytes } from "node:crypto";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import {
  type BatchEnding,
  type BatchRecord,
  type BatchStatus,
  COMPLETION_WINDOWS,
  parseBatchRecord,
} from "./batch-types.js";
import { type ListOptions, type ListPage, listIndex, newFileId } from "./file-store.js";
import {
  BATCH_TRANSITION_LUA,
  CREATE_BATCH_LUA,
  END_LINES_LUA,
  ENQUEUE_PROGRESS_LUA,
  RELEASE_LEASE_LUA,
} from "./lua/batch-scripts.lua.js";
import type { LineEnd } from "./output-lines.js";

/** How long an enqueuer's lease lasts without renewal; a crashed enqueuer is replaced after it. */
export const ENQUEUE_LEASE_MS = 30_000;
/** Lines per end-lines call (the script's ARGV stays well under Lua's unpack limits). */
const END_LINES_PER_CALL = 500;

type Command = (...args: Array<string | number>) => Promise<unknown>;

const COMMANDS = {
  cascadeBatchCreate: { lua: CREATE_BATCH_LUA, keys: 7 },
  cascadeBatchEndLines: { lua: END_LINES_LUA, keys: 13 },
  cascadeBatchProgress: { lua: ENQUEUE_PROGRESS_LUA, keys: 3 },
  cascadeBatchTransition: { lua: BATCH_TRANSITION_LUA, keys: 1 },
  cascadeBatchRelease: { lua: RELEASE_LEASE_LUA, keys: 1 },
} as const;

export interface NewBatch {
  id: string;
  tenant: string;
  input_file_id: string;
  endpoint: string;
  completion_window: keyof typeof COMPLETION_WINDOWS;
  metadata: Record<string, string> | null;
  priority: number;
  total: number;
  output_ttl_s: number;
}

export const newLeaseToken = (): string => randomBytes(12).toString("hex");

/**
 * The batch record and its working keys in Redis (see keys.ts and lua/batch-scripts.lua.ts).
 * Stateless: any API, worker or sweeper process may call any method at any time.
 */
export class BatchStore {
  private readonly commands: Record<keyof typeof COMMANDS, Command>;

  constructor(
    readonly redis: RedisClient,
    readonly keys: Keys,
    private readonly retentionSeconds: number,
  ) {
    const table = redis as unknown as Record<string, Command>;
    for (const [name, spec] of Object.entries(COMMANDS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: spec.keys, lua: spec.lua });
    }
    this.commands = Object.fromEntries(
      Object.keys(COMMANDS).map((name) => [name, (table[name] as Command).bind(redis)]),
    ) as Record<keyof typeof COMMANDS, Command>;
  }

  /** Writes an accepted batch (status validating) holding the enqueue lease `leaseToken`. */
  async create(batch: NewBatch, leaseToken: string): Promise<BatchRecord | undefined> {
    const { keys } = this;
    const fields: Record<string, string> = {
      id: batch.id,
      tenant: batch.tenant,
      endpoint: batch.endpoint,
      input_file_id: batch.input_file_id,
      completion_window: batch.completion_window,
      ending: "",
      total: String(batch.total),
      cursor: "0",
      ended: "0",
      completed: "0",
      failed: "0",
      cancelled: "0",
      priority: String(batch.priority),
      output_ttl_s: String(batch.output_ttl_s),
      ...(batch.metadata ? { metadata: JSON.stringify(batch.metadata) } : {}),
    };
    const createdAt = await this.commands.cascadeBatchCreate(
      keys.batch(batch.id),
      keys.file(batch.input_file_id),
      keys.fileData(batch.input_file_id),
      keys.batchInput(batch.id),
      keys.batchesActive,
      keys.batchIndex(batch.tenant),
      keys.batchLease(batch.id),
      batch.tenant,
      batch.id,
      JSON.stringify(fields),
      leaseToken,
      ENQUEUE_LEASE_MS,
      COMPLETION_WINDOWS[batch.completion_window],
    );
    if (!createdAt) return undefined;
    return this.load(batch.id);
  }

  /** The record, whoever owns it; undefined when there is none. */
  async load(batchId: string): Promise<BatchRecord | undefined> {
    return parseBatchRecord((await this.redis.hgetall(this.keys.batch(batchId))) as Record<string, string>);
  }

  /** The record if it belongs to `tenant` (another tenant's batch is a 404). */
  async get(tenant: string, batchId: string): Promise<BatchRecord | undefined> {
    const record = await this.load(batchId);
    return record?.tenant === tenant ? record : undefined;
  }

  /** A page of the tenant's batches. */
  async list(tenant: string, options: ListOptions): Promise<ListPage<BatchRecord>> {
    return listIndex(this.redis, this.keys.batchIndex(tenant), options, async (ids) => {
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hgetall(this.keys.batch(id));
      const replies = (await pipeline.exec()) ?? [];
      return replies.map(([, hash]) => parseBatchRecord((hash ?? {}) as Record<string, string>));
    });
  }

  /** Ids of batches not yet terminal. */
  async active(): Promise<string[]> {
    return this.redis.smembers(this.keys.batchesActive);
  }

  async forget(batchId: string): Promise<void> {
    await this.redis.srem(this.keys.batchesActive, batchId);
  }

  async transition(
    batchId: string,
    to: "start" | "cancel" | "expire",
  ): Promise<{ status: BatchStatus | "missing"; ending: BatchEnding; changed: boolean }> {
    const [status, ending, changed] = (await this.commands.cascadeBatchTransition(
      this.keys.batch(batchId),
      to,
    )) as [BatchStatus | "missing", BatchEnding, number];
    return { status, ending, changed: changed === 1 };
  }

  /** Takes the enqueue lease if nobody holds it. */
  async acquireLease(batchId: string, token: string): Promise<boolean> {
    return (
      (await this.redis.set(this.keys.batchLease(batchId), token, "PX", ENQUEUE_LEASE_MS, "NX")) === "OK"
    );
  }

  async releaseLease(batchId: string, token: string): Promise<void> {
    await this.commands.cascadeBatchRelease(this.keys.batchLease(batchId), token);
  }

  /** Reports enqueue progress (see ENQUEUE_PROGRESS_LUA); `lost` when the lease was taken over. */
  async progress(
    batchId: string,
    token: string,
    cursor: number,
    done: boolean,
  ): Promise<{ status: BatchStatus | "missing" | "lost"; ending: BatchEnding }> {
    const [status, ending] = (await this.commands.cascadeBatchProgress(
      this.keys.batch(batchId),
      this.keys.batchLease(batchId),
      this.keys.batchInput(batchId),
      token,
      cursor,
      ENQUEUE_LEASE_MS,
      done ? "1" : "0",
    )) as [BatchStatus | "missing" | "lost", BatchEnding];
    return { status, ending };
  }

  /** Remembers the custom_id of each line handed to the queue (for lines that end without a job). */
  async saveCustomIds(batchId: string, lines: Array<{ line: number; custom_id: string }>): Promise<void> {
    if (lines.length === 0) return;
    const flat: string[] = [];
    for (const entry of lines) {
      flat.push(String(entry.line), entry.custom_id);
      // A custom_id may hold a lone surrogate (a title cut inside an emoji, as JSON.stringify and
      // Python's json.dumps write it), which UTF-8 cannot carry: such a one is kept as JSON too,
      // in a field of its own (processes of an earlier version read the first, as before).
      if (LONE_SURROGATE.test(entry.custom_id)) flat.push(`j:${entry.line}`, JSON.stringify(entry.custom_id));
    }
    await this.redis.hset(this.keys.batchCustomIds(batchId), ...flat);
  }

  async customIds(batchId: string, lines: number[]): Promise<string[]> {
    if (lines.length === 0) return [];
    const fields = lines.flatMap((line) => [String(line), `j:${line}`]);
    const values = await this.redis.hmget(this.keys.batchCustomIds(batchId), ...fields);
    return lines.map((_, index) => {
      const json = values[2 * index + 1];
      if (json) return JSON.parse(json) as string;
      return values[2 * index] ?? "";
    });
  }

  /** Which of lines 1..upTo have ended, as a bitmap reader. */
  async endedLines(batchId: string): Promise<(line: number) => boolean> {
    const bitmap = (await this.redis.getBuffer(this.keys.batchEnded(batchId))) ?? Buffer.alloc(0);
    // Redis numbers bits from the most significant bit of the first byte.
    return (line) => (((bitmap[line >> 3] ?? 0) >> (7 - (line & 7))) & 1) === 1;
  }

  /**
   * Records how lines ended (see END_LINES_LUA); returns the batch's status afterwards, which is
   * terminal when these were its last lines.
   */
  async endLines(
    batch: { id: string; tenant: string },
    ends: LineEnd[],
  ): Promise<{ status: string; ended: number; total: number; endedNow: Set<number> }> {
    const { keys } = this;
    const endedNow = new Set<number>();
    let result = { status: "missing", ended: 0, total: 0, endedNow };
    for (let start = 0; start < ends.length; start += END_LINES_PER_CALL) {
      const args: Array<string | number> = [];
      for (const end of ends.slice(start, start + END_LINES_PER_CALL)) {
        args.push(
          end.line,
          end.kind,
          end.json,
          end.inputTokens,
          end.outputTokens,
          end.cachedTokens,
          end.reasoningTokens,
        );
      }
      const outputFileId = newFileId();
      const errorFileId = newFileId();
      const [status, ended, total, lines] = (await this.commands.cascadeBatchEndLines(
        keys.batch(batch.id),
        keys.batchEnded(batch.id),
        keys.batchOutput(batch.id),
        keys.batchErrors(batch.id),
        keys.batchCustomIds(batch.id),
        keys.batchesActive,
        keys.file(outputFileId),
        keys.fileData(outputFileId),
        keys.file(errorFileId),
        keys.fileData(errorFileId),
        keys.fileIndex(batch.tenant),
        keys.batchInput(batch.id),
        keys.batchLease(batch.id),
        outputFileId,
        errorFileId,
        this.retentionSeconds,
        ...args,
      )) as [string, number, number, string?];
      for (const line of (lines ?? "").split(",")) if (line) endedNow.add(Number(line));
      result = { status, ended, total, endedNow };
    }
    return result;
  }
}

/** A UTF-16 surrogate without its pair (String.prototype.isWellFormed's test, before ES2024's lib). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
