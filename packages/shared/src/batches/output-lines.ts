import { httpErrorOf, type OutcomeHttpError } from "../jobs/http-error-of.js";
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
  /**
   * The output or error file line; for `stop`, its start, `{"id":…,"custom_id":…` without the
   * closing brace, which the script completes (it never parses it: Lua's cjson refuses the
   * `\ud83d` of a lone surrogate JSON.stringify writes).
   */
  json: string;
  inputTokens: number;
  outputTokens: number;
  /** Of the input tokens, those read from the provider's prompt cache. */
  cachedTokens: number;
  /** Of the output tokens, the model's reasoning. */
  reasoningTokens: number;
}

const NO_TOKENS = { inputTokens: 0, outputTokens: 0, cachedTokens: 0, reasoningTokens: 0 };

/** The parts of a chat.completion's `usage` a batch sums. */
interface LineUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
  completion_tokens_details?: { reasoning_tokens?: number };
}

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
    json: JSON.stringify({ id: batchRequestId(batchId, line), custom_id: customId }).slice(0, -1),
    ...NO_TOKENS,
  };
}

/**
 * A line whose request got no answer (its input was lost, its job failed inside Cascade), in
 * OpenAI's error-file shape for those: `response` null and `error` `{code, message}`, as for an
 * expired line.
 */
export function failedLine(batch: BatchLineRef, type: string, message: string): LineEnd {
  return errorLine(batch, null, { code: type, message });
}

/**
 * A line whose request was answered with an error: the HTTP answer in `response` (status and
 * OpenAI's error body, as the gateway maps the same outcome) and `error` null, as OpenAI writes it.
 */
function answeredErrorLine(jobId: string, batch: BatchLineRef, http: OutcomeHttpError): LineEnd {
  const body = { error: { message: http.message, type: http.type, param: null, code: http.code } };
  return errorLine(batch, { status_code: http.status, request_id: jobId, body }, null);
}

/** A line found invalid when it was queued: the 400 OpenAI would have answered its request. */
export function invalidLine(jobId: string, batch: BatchLineRef, message: string): LineEnd {
  return answeredErrorLine(jobId, batch, {
    status: 400,
    type: "invalid_request_error",
    code: "invalid_request",
    message,
  });
}

function errorLine(batch: BatchLineRef, response: unknown, error: unknown): LineEnd {
  return {
    line: batch.line,
    kind: "fail",
    json: JSON.stringify({
      id: batchRequestId(batch.id, batch.line),
      custom_id: batch.custom_id,
      response,
      error,
    }),
    ...NO_TOKENS,
  };
}

/**
 * The output or error line of a job that reached its terminal outcome. `request_id` is the job
 * id, so GET /v1/jobs/:request_id shows the line's attempts and costs.
 */
export function lineEndOf(jobId: string, batch: BatchLineRef, outcome: JobOutcome): LineEnd {
  if (outcome.status === "succeeded" && outcome.result) {
    const usage = outcome.result.usage as LineUsage | undefined;
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
      cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
      reasoningTokens: usage?.completion_tokens_details?.reasoning_tokens ?? 0,
    };
  }
  if (outcome.status === "cancelled") return stopLine(batch.id, batch.line, batch.custom_id);
  // Job data the worker found invalid (a config change since it was queued): the 400 a line
  // found invalid when queued gets.
  if (outcome.error?.type === "invalid_job") return invalidLine(jobId, batch, outcome.error.message);
  // As the gateway answers the same outcome: the request's fault a 400, limits a 429, a spent
  // budget a 429 insufficient_quota (code over_budget), every hop failing a 502.
  return answeredErrorLine(jobId, batch, httpErrorOf(outcome));
}
