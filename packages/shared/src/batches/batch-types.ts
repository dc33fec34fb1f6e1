import { z } from "zod";

/** The only endpoint a Cascade batch runs (OpenAI's `endpoint`; each line's `url` must match it). */
export const BATCH_ENDPOINT = "/v1/chat/completions";
/** OpenAI's completion windows, in seconds (only `24h` exists). */
export const COMPLETION_WINDOWS = { "24h": 24 * 3600 } as const;
/** OpenAI's limit on requests per batch file. */
export const MAX_BATCH_LINES = 50_000;
/** Files live in Redis (docs/decisions/0009-batches.md): one upload may be at most this big. */
export const MAX_FILE_BYTES = 100 * 1024 * 1024;
/** One input line may be at most this big (the same 1 MiB POST /v1/jobs allows for a body). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Batch lines queue behind interactive jobs (default 5) unless the batch asks otherwise. */
export const BATCH_DEFAULT_PRIORITY = 7;

export const BATCH_STATUSES = [
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled",
] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];
const TERMINAL = new Set<string>(["failed", "completed", "expired", "cancelled"]);
export const isTerminalBatchStatus = (status: string): boolean => TERMINAL.has(status);

/** Why a batch is winding down early: a cancel request, or its completion window ran out. */
export type BatchEnding = "" | "cancel" | "expire";

const metadataSchema = z
  .record(z.string().max(64, "metadata keys are at most 64 characters"), z.string().max(512))
  .refine((metadata) => Object.keys(metadata).length <= 16, "metadata holds at most 16 keys");

/** POST /v1/batches body: OpenAI's fields, plus Cascade's `priority` for the lines' jobs. */
export const createBatchBodySchema = z.strictObject({
  input_file_id: z.string().min(1).max(200),
  endpoint: z.literal(BATCH_ENDPOINT, {
    error: `endpoint must be "${BATCH_ENDPOINT}": Cascade batches run chat completions only`,
  }),
  completion_window: z.literal("24h", { error: 'completion_window must be "24h"' }),
  metadata: metadataSchema.nullable().optional(),
  output_expires_after: z
    .strictObject({
      anchor: z.literal("created_at"),
      seconds: z
        .number()
        .int()
        .min(3600)
        .max(30 * 24 * 3600),
    })
    .optional(),
  priority: z.number().int().min(1).max(10).default(BATCH_DEFAULT_PRIORITY),
});
export type CreateBatchBody = z.infer<typeof createBatchBodySchema>;

/** One problem in an input file, as in OpenAI's `batch.errors.data`. */
export interface BatchLineError {
  code: string;
  line: number | null;
  message: string;
  param: string | null;
}

/** The batch record in Redis (a hash), parsed. */
export interface BatchRecord {
  id: string;
  tenant: string;
  endpoint: string;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  ending: BatchEnding;
  created_at: number;
  expires_at: number;
  in_progress_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  output_file_id: string | null;
  error_file_id: string | null;
  total: number;
  completed: number;
  failed: number;
  /** Lines that ended with the batch's cancellation (in neither file, as at OpenAI). */
  cancelled: number;
  ended: number;
  /** Lines 1..cursor have been handed to the queue (or ended without running). */
  cursor: number;
  enqueue_done: boolean;
  priority: number;
  metadata: Record<string, string> | null;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
  /** Unix ms of the last line that ended (Redis time); sweepers reconcile batches idle for long. */
  progress_at: number;
  /** Lifetime of the output and error files, in seconds. */
  output_ttl_s: number;
}

/** The Batch object of OpenAI's API (https://platform.openai.com/docs/api-reference/batch/object). */
export interface BatchObject {
  id: string;
  object: "batch";
  endpoint: string;
  errors: { object: "list"; data: BatchLineError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
}

const int = (value: string | undefined): number => (value ? Number.parseInt(value, 10) || 0 : 0);
const optionalInt = (value: string | undefined): number | null => (value ? Number.parseInt(value, 10) : null);

/** Parses HGETALL of a batch record; undefined when the hash is missing or not a batch. */
export function parseBatchRecord(hash: Record<string, string>): BatchRecord | undefined {
  if (!hash.id || !hash.tenant || !hash.status) return undefined;
  let metadata: Record<string, string> | null = null;
  try {
    metadata = hash.metadata ? (JSON.parse(hash.metadata) as Record<string, string>) : null;
  } catch {}
  return {
    id: hash.id,
    tenant: hash.tenant,
    endpoint: hash.endpoint ?? "",
    input_file_id: hash.input_file_id ?? "",
    completion_window: hash.completion_window ?? "24h",
    status: hash.status as BatchStatus,
    ending: (hash.ending ?? "") as BatchEnding,
    created_at: int(hash.created_at),
    expires_at: int(hash.expires_at),
    in_progress_at: optionalInt(hash.in_progress_at),
    finalizing_at: optionalInt(hash.finalizing_at),
    completed_at: optionalInt(hash.completed_at),
    failed_at: optionalInt(hash.failed_at),
    expired_at: optionalInt(hash.expired_at),
    cancelling_at: optionalInt(hash.cancelling_at),
    cancelled_at: optionalInt(hash.cancelled_at),
    output_file_id: hash.output_file_id || null,
    error_file_id: hash.error_file_id || null,
    total: int(hash.total),
    completed: int(hash.completed),
    failed: int(hash.failed),
    cancelled: int(hash.cancelled),
    ended: int(hash.ended),
    cursor: int(hash.cursor),
    enqueue_done: hash.enqueue_done === "1",
    priority: int(hash.priority) || BATCH_DEFAULT_PRIORITY,
    metadata,
    input_tokens: int(hash.input_tokens),
    output_tokens: int(hash.output_tokens),
    cached_tokens: int(hash.cached_tokens),
    reasoning_tokens: int(hash.reasoning_tokens),
    progress_at: int(hash.progress_at),
    output_ttl_s: int(hash.output_ttl_s),
  };
}

/** The public Batch object of a record. */
export function toBatchObject(record: BatchRecord): BatchObject {
  return {
    id: record.id,
    object: "batch",
    endpoint: record.endpoint,
    errors: null,
    input_file_id: record.input_file_id,
    completion_window: record.completion_window,
    status: record.status,
    output_file_id: record.output_file_id,
    error_file_id: record.error_file_id,
    created_at: record.created_at,
    in_progress_at: record.in_progress_at,
    expires_at: record.expires_at,
    finalizing_at: record.finalizing_at,
    completed_at: record.completed_at,
    failed_at: record.failed_at,
    expired_at: record.expired_at,
    cancelling_at: record.cancelling_at,
    cancelled_at: record.cancelled_at,
    request_counts: { total: record.total, completed: record.completed, failed: record.failed },
    metadata: record.metadata,
    usage: {
      input_tokens: record.input_tokens,
      input_tokens_details: { cached_tokens: record.cached_tokens },
      output_tokens: record.output_tokens,
      output_tokens_details: { reasoning_tokens: record.reasoning_tokens },
      total_tokens: record.input_tokens + record.output_tokens,
    },
  };
}

/** Job id of a batch line: deterministic, so enqueueing a line twice (after a crash) adds it once. */
export function batchLineJobId(batchId: string, line: number): string {
  return `job_${batchId.replace(/^batch_/, "")}-${line}`;
}

/** The `id` of a line in the output and error files (OpenAI's `batch_req_...`). */
export function batchRequestId(batchId: string, line: number): string {
  return `batch_req_${batchId.replace(/^batch_/, "")}-${line}`;
}
