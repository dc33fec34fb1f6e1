import type { ErrorType } from "../plugins/http-error.js";

/**
 * A gateway answer that is not a completion, as OpenAI's error shape and status (a failed run's
 * comes from the shared `httpErrorOf`, as batch error lines' do).
 */
export interface GatewayError {
  status: number;
  type: ErrorType;
  code: string;
  message: string;
  /** Seconds, for a 429 whose limits refill at a known time. */
  retryAfterS?: number;
  /** False for a 502 that asking again cannot change (httpErrorOf). */
  retryable?: false;
}

/**
 * Retry-After from the earliest refill; and `x-should-retry` (read by OpenAI's SDKs) where
 * retrying cannot help soon: a spent budget waits for the next period, a 400 for a changed request,
 * a 502 whose every hop refused the request itself (their SDKs retry a 502 twice, the whole chain).
 */
export function errorHeaders(error: GatewayError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (error.retryAfterS !== undefined) headers["retry-after"] = String(error.retryAfterS);
  if (error.code === "over_budget" || error.status === 400 || error.retryable === false) {
    headers["x-should-retry"] = "false";
  }
  return headers;
}

/** The error as OpenAI sends it: `{"error": {"type", "message", "code", "param"}}`. */
export function errorBody(
  error: Pick<GatewayError, "type" | "message"> & { code: string | null },
  param: string | null = null,
) {
  return { error: { type: error.type, message: error.message, code: error.code, param } };
}
