import { APICallError } from "@ai-sdk/provider";
import { parseJsonSecurely } from "./json-body.js";
import { type RawAnswer, TransportFailure } from "./post-json.js";
import { isNullish, isObject } from "./schema-checks.js";

/**
 * The errors @ai-sdk/provider-utils' `postJsonToApi` builds for a failed call (its failed-response
 * handler, `handleFetchError`), built the same way from what the lean client saw, so that the
 * provider's own classifier (errors-openai.ts) reads the same status, headers, body, data and
 * message on either path.
 */

type ErrorData = { error: Record<string, unknown> & { message: string } };

/**
 * @ai-sdk/openai's `openaiErrorDataSchema`, `{error: {message: string, type?, param?, code?}}`, and
 * its output: only those keys (zod strips the rest). Undefined where the schema refuses the body.
 */
export function openAIErrorData(value: unknown): ErrorData | undefined {
  if (!isObject(value) || !isObject(value.error)) return undefined;
  const error = value.error;
  if (typeof error.message !== "string") return undefined;
  if (!isNullish(error.type) && typeof error.type !== "string") return undefined;
  const code = error.code;
  if (!isNullish(code) && typeof code !== "string" && !(typeof code === "number" && Number.isFinite(code)))
    return undefined;
  const data: ErrorData = { error: { message: error.message } };
  for (const key of ["type", "param", "code"] as const) if (key in error) data.error[key] = error[key];
  return data;
}

/** A non-2xx answer as the SDK's JSON error-response handler reports it. */
export function failedResponseError(
  answer: RawAnswer,
  text: string,
  url: string,
  requestBodyValues: unknown,
): APICallError {
  const common = {
    url,
    requestBodyValues,
    statusCode: answer.status,
    responseHeaders: answer.headers,
    responseBody: text,
  };
  // Some providers answer some errors with an empty body.
  if (text.trim() === "") return new APICallError({ message: answer.statusText, ...common });
  const parsed = parseJsonSecurely(text);
  const data = parsed.ok ? openAIErrorData(parsed.value) : undefined;
  if (!data) return new APICallError({ message: answer.statusText, ...common });
  return new APICallError({ message: data.error.message, ...common, data });
}

/** A 2xx answer whose body is not JSON or not a chat.completion the SDK's schema accepts. */
export function invalidJsonError(
  answer: RawAnswer,
  text: string,
  url: string,
  requestBodyValues: unknown,
  cause: unknown,
): APICallError {
  return new APICallError({
    message: "Invalid JSON response",
    cause,
    statusCode: answer.status,
    responseHeaders: answer.headers,
    responseBody: text,
    url,
    requestBodyValues,
  });
}

/**
 * A call that ended without a readable answer: before the response headers, what fetch reports
 * as "fetch failed" and the SDK as "Cannot connect to API: <cause>"; while reading the body, the
 * SDK's "Failed to process successful response" / "Failed to process error response".
 */
export function transportError(error: unknown, url: string, requestBodyValues: unknown): unknown {
  if (!(error instanceof TransportFailure)) return error;
  if (error.phase === "connect" || !error.answer) {
    return new APICallError({
      message: `Cannot connect to API: ${error.error.message}`,
      cause: error.error,
      url,
      requestBodyValues,
      isRetryable: true,
    });
  }
  const { status, headers } = error.answer;
  const ok = status >= 200 && status < 300;
  return new APICallError({
    message: ok ? "Failed to process successful response" : "Failed to process error response",
    cause: error.error,
    statusCode: status,
    url,
    responseHeaders: headers,
    requestBodyValues,
    isRetryable: true,
  });
}
