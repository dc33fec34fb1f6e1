import { httpErrorOf } from "../jobs/http-error-of.js";
import type { JobOutcome } from "../schemas/job.js";
import { batchRequestId } from "./batch-types.js";

/**
 * How one line ended, as the end-lines script takes it: `ok` goes to the output file, `fail` to
 * the error file, `stop` (never ran, or aborted) is decided by the script from the batch's state:
 * nothing when the batch was cancelled (as at OpenAI), `batch_expired` when it expired, else a
 * `cancelled` error line (the line's own job was cancelled through DELETE /v1/jobs/:id).
 */
export interface LineEnd {
  line: number;
  kind: "ok" | "fail" | "stop";
  /** The output or error file line (for `stop`: `{"id", "custom_id"}`, completed by the script). */
  json: string;
  inputTokens: number;
  outputTokens: number;
}

/** HTTP status an OpenAI client would have seen for a failed job, by Cascade error type. */
const STATUS_BY_ERROR: Record<string, number> = {
  bad_request: 400,
  content_filter: 400,
  invalid_job: 400,
  over_budget: 429,
  rate_limited: 429,
  all_models_failed: 502,
};
const TYPE_BY_ERROR: Record<string, string> = {
  bad_request: "invalid_request_error",
  content_filter: "invalid_request_error",
  invalid_job: "invalid_request_error",
  over_budget: "insufficient_quota",
  rate_limited: "rate_limit_error",
};

export interface BatchLineRef {
  id: string;
  custom_id: string;
  line: number;
}

/** A line that never ran (or was aborted): the script decides where, if anywhere, it goes. */
export function stopLine(batchId: string, line: number, customId: string): LineEnd {
  return {
    line,
    kind: "stop",
    json: JSON.stringify({ id: batchRequestId(batchId, line), custom_id: customId }),
    inputTokens: 0,
    outputTokens: 0,
  };
}

/**
 * A line that failed with `type` and `message`, in OpenAI's error-file shape: the HTTP answer
 * its request got in `response`, and `error` null (OpenAI fills `error` only for a request that
 * got no answer: an expired or cancelled line). `http` overrides the status and error type.
 */
export function failedLine(
  jobId: string,
  batch: BatchLineRef,
  type: string,
  message: string,
  http?: { status: number; type: string },
): LineEnd {
  const status = http?.status ?? STATUS_BY_ERROR[type] ?? 500;
  const errorType = http?.type ?? TYPE_BY_ERROR[type] ?? "server_error";
  return {
    line: batch.line,
    kind: "fail",
    json: JSON.stringify({
      id: batchRequestId(batch.id, batch.line),
      custom_id: batch.custom_id,
      response: {
        status_code: status,
        request_id: jobId,
        body: { error: { message, type: errorType, param: null, code: type } },
      },
      error: null,
    }),
    inputTokens: 0,
    outputTokens: 0,
  };
}

/**
 * The output or error line of a job that reached its terminal outcome. `request_id` is the job
 * id, so GET /v1/jobs/:request_id shows the line's attempts and costs.
 */
export function lineEndOf(jobId: string, batch: BatchLineRef, outcome: JobOutcome): LineEnd {
  if (outcome.status === "succeeded" && outcome.result) {
    const usage = outcome.result.usage as { prompt_tokens?: number; completion_tokens?: number } | undefined;
    return {
      line: batch.line,
      kind: "ok",
      json: JSON.stringify({
        id: batchRequestId(batch.id, batch.line),
        custom_id: batch.custom_id,
        response: { status_code: 200, request_id: jobId, body: outcome.result },
        error: null,
      }),
      inputTokens: usage?.prompt_tokens ?? 0,
      outputTokens: usage?.completion_tokens ?? 0,
    };
  }
  if (outcome.status === "cancelled") return stopLine(batch.id, batch.line, batch.custom_id);
  const error = outcome.error ?? { type: "internal_error", message: "the job failed" };
  if (error.type !== "all_models_failed") return failedLine(jobId, batch, error.type, error.message);
  // What the chain met decides, as for the gateway: limits a 429, a spent budget a 429
  // insufficient_quota (code over_budget), hops the request cannot run on a 400, else a 502.
  const http = httpErrorOf(outcome);
  return failedLine(jobId, batch, http.code, error.message, http);
}
