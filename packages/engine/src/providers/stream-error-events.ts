import { APICallError } from "@ai-sdk/provider";
import { classifyAnthropicError } from "./classify-anthropic.js";
import { classifyOpenAIError } from "./classify-openai.js";
import type { ProviderError } from "./provider-error.js";

/**
 * Providers' own mid-stream error events, which the AI SDK passes on as plain objects in an
 * `error` stream part, classified by the same per-provider classifier as HTTP errors: each event is
 * presented to it as the HTTP error the provider would have answered with, had it failed before
 * streaming. (Gemini's error chunk needs nothing here: the SDK already builds an APICallError from
 * its `code`, which classifyGeminiError reads like any other.)
 */

type ErrorObject = { message?: unknown; type?: unknown; code?: unknown };

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
}

function asHttpError(message: string, statusCode: number, body: unknown): APICallError {
  return new APICallError({
    message,
    url: "",
    requestBodyValues: {},
    statusCode,
    responseBody: JSON.stringify(body),
    data: body,
  });
}

/**
 * The status an OpenAI error object stands for: its numeric `code` where it has one (some
 * compatible servers send `"code": 503`), else its `code`/`type` words; a bare error is a 500
 * (OpenAI's own mid-stream errors are `"type": "server_error"`).
 */
function openAIStatus(error: ErrorObject): number {
  const numeric = Number(error.code);
  if (Number.isInteger(numeric) && numeric >= 400 && numeric <= 599) return numeric;
  const words = `${String(error.code ?? "")} ${String(error.type ?? "")}`.toLowerCase();
  // OpenAI's 429 bodies say `"type": "requests"` or `"tokens"` with `"code": "rate_limit_exceeded"`.
  if (/rate_limit|insufficient_quota/.test(words) || error.type === "requests" || error.type === "tokens")
    return 429;
  if (/authentication|invalid_api_key/.test(words)) return 401;
  if (/permission/.test(words)) return 403;
  if (/not_found/.test(words)) return 404;
  if (/invalid_request|context_length|bad_request|unsupported/.test(words)) return 400;
  if (/overload/.test(words)) return 503;
  if (/timeout/.test(words)) return 504;
  return 500;
}

/**
 * OpenAI's mid-stream error chunk, `data: {"error": {"message", "type", "param", "code"}}`; the
 * SDK's `error` part carries the inner object (and the whole frame when it throws before output).
 */
export function classifyOpenAIErrorEvent(event: unknown): ProviderError | undefined {
  const inner = record(record(event)?.error) ?? record(event);
  if (typeof inner?.message !== "string") return undefined;
  const body = { error: inner };
  return classifyOpenAIError(asHttpError(inner.message, openAIStatus(inner), body));
}

/** The status Anthropic answers each error type with (https://docs.anthropic.com/en/api/errors). */
const ANTHROPIC_STATUS: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/**
 * Anthropic's `event: error` with `data: {"type": "error", "error": {"type": "overloaded_error",
 * "message": "Overloaded"}}`; the SDK's `error` part carries the inner `{type, message}`. An unknown
 * type counts as api_error (500, server_error): Anthropic stopped the stream on its side.
 */
export function classifyAnthropicErrorEvent(event: unknown): ProviderError | undefined {
  const outer = record(event);
  const inner = outer?.type === "error" ? record(outer.error) : outer;
  if (typeof inner?.type !== "string" || typeof inner.message !== "string") return undefined;
  const body = { type: "error", error: inner };
  return classifyAnthropicError(asHttpError(inner.message, ANTHROPIC_STATUS[inner.type] ?? 500, body));
}
