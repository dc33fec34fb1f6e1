import type { LanguageModelV3GenerateResult } from "@ai-sdk/provider";
import { UnsupportedFunctionalityError } from "@ai-sdk/provider";
import { z } from "zod";
import {
  classifyByStatus,
  eventAsApiCallError,
  type HttpFailure,
  optional,
  parseErrorBody,
  parseRawBody,
  readApiCallError,
} from "./ai-sdk/api-call-error.js";
import type { StreamClassifiers } from "./ai-sdk/from-stream.js";
import { ProviderError, UPSTREAM_TEXT_CHARS } from "./provider-error.js";
import { lowerCaseHeaders } from "./retry-after.js";
import { anthropicReportedUsage } from "./stream-usage.js";

/**
 * Everything Cascade knows about how Anthropic's Messages API fails: HTTP status plus error body,
 * the `anthropic-ratelimit-*-reset` headers, the `event: error` that ends a stream, and a refusal
 * that arrives as a successful answer.
 */

/**
 * Anthropic's error envelope: `{"type": "error", "error": {"type", "message", "details"?}, "request_id"}`.
 * https://docs.anthropic.com/en/api/errors
 */
const AnthropicErrorBodySchema = z.object({
  type: optional(z.string()),
  error: optional(
    z.object({
      type: optional(z.string()),
      message: optional(z.string()),
      details: optional(z.object({ error_code: optional(z.string()) })),
    }),
  ),
});

type AnthropicErrorBody = z.infer<typeof AnthropicErrorBodySchema>;

type Rule = { reason: ProviderError["reason"]; providerSpecific?: boolean };

/**
 * Anthropic `error.type` → reason. `invalid_request_error` is refined by MESSAGE_RULES first.
 * https://docs.anthropic.com/en/api/errors
 */
const TYPE_RULES: Record<string, Rule> = {
  rate_limit_error: { reason: "rate_limited" },
  // 529: Anthropic is overloaded for everyone; the contract makes it a server_error.
  overloaded_error: { reason: "server_error" },
  api_error: { reason: "server_error" },
  // 504: Anthropic's own processing deadline passed; a timeout like ours (retryable, counts for breakers).
  timeout_error: { reason: "timeout" },
  authentication_error: { reason: "auth_error" },
  permission_error: { reason: "auth_error" },
  // 402: a billing fault no wait fixes, like OpenAI's insufficient_quota (decision 0004).
  billing_error: { reason: "auth_error" },
  // 404 is the model name ("model: claude-x"): another provider may well have the model.
  not_found_error: { reason: "bad_request", providerSpecific: true },
  // 413 comes from Cloudflare before the API: the request is larger than Anthropic accepts (32 MB).
  request_too_large: { reason: "context_length" },
};

/** What Anthropic's 400 `invalid_request_error` messages mean, in the words it actually uses. */
const MESSAGE_RULES: Array<Rule & { match: RegExp }> = [
  {
    // "prompt is too long: 208310 tokens > 200000 maximum";
    // "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, ..."
    match: /prompt is too long|exceed context limit|context window/i,
    reason: "context_length",
  },
  { match: /content filtering policy/i, reason: "content_filter" },
  {
    // What this model rejects but another may accept: "`temperature` and `top_p` cannot both be
    // specified for this model", "max_tokens: 10000 > 4096, which is the maximum allowed number of
    // output tokens for claude-3-5-sonnet-20240620", "... is not supported ...", "does not support ...".
    match:
      /for this model|maximum allowed number of output tokens|not supported|does not support|unsupported/i,
    reason: "bad_request",
    providerSpecific: true,
  },
];

/** "You have reached your (specified) (workspace) API usage limits", "Your credit balance is too low". */
const BILLING = /reached your (specified )?(workspace )?API usage limits|credit balance is too low/i;

/** Reset timestamps Anthropic sends (RFC 3339), one per limit, and which of them a 429 exhausted. */
const RATE_LIMITS = ["requests", "tokens", "input-tokens", "output-tokens"];

/**
 * How long until Anthropic's exhausted limit resets, from `anthropic-ratelimit-*-reset` (RFC 3339
 * timestamps) when no `retry-after` came: the latest reset among limits whose `-remaining` is 0,
 * else the earliest reset of any limit.
 * https://docs.anthropic.com/en/api/rate-limits#response-headers
 */
export function anthropicResetMs(
  headers: Record<string, string | undefined> | undefined,
  now = Date.now(),
): number | undefined {
  if (!headers) return undefined;
  const lower = lowerCaseHeaders(headers);
  const exhausted: number[] = [];
  const known: number[] = [];
  for (const limit of RATE_LIMITS) {
    const reset = Date.parse(lower[`anthropic-ratelimit-${limit}-reset`] ?? "");
    if (Number.isNaN(reset)) continue;
    const wait = Math.max(0, reset - now);
    known.push(wait);
    if (lower[`anthropic-ratelimit-${limit}-remaining`] === "0") exhausted.push(wait);
  }
  if (exhausted.length) return Math.max(...exhausted);
  return known.length ? Math.min(...known) : undefined;
}

/**
 * The raw body parsed here: the SDK's `data` is its zod-stripped copy, without `error.details`.
 * A body that is not JSON (a proxy's HTML page) falls back to whatever the SDK parsed.
 */
function bodyOf(failure: HttpFailure): AnthropicErrorBody | undefined {
  return parseErrorBody(AnthropicErrorBodySchema, parseRawBody(failure.rawBody) ?? failure.body);
}

/** Classifies a failed Anthropic Messages call from status plus parsed error body. */
export function classifyAnthropicError(error: unknown, now = Date.now()): ProviderError {
  // Thrown by @ai-sdk/anthropic before any HTTP call (a media type or tool setting it cannot send).
  if (UnsupportedFunctionalityError.isInstance(error)) {
    return new ProviderError("bad_request", error.message, { providerSpecific: true, cause: error });
  }
  const read = readApiCallError(error);
  if (read instanceof ProviderError) return read;
  const body = bodyOf(read);
  const type = body?.error?.type ?? "";
  const upstreamMessage = body?.error?.message ?? read.message;
  const message = `HTTP ${read.status}${type ? ` ${type}` : ""}: ${upstreamMessage}`.slice(
    0,
    UPSTREAM_TEXT_CHARS,
  );
  const retryAfterMs =
    read.retryAfterMs ?? (read.status === 429 ? anthropicResetMs(read.headers, now) : undefined);
  const options = { httpStatus: read.status, retryAfterMs, cause: error };

  // Billing faults no wait fixes, like OpenAI's insufficient_quota (decision 0004): the tier's monthly
  // cap (a 429 rate_limit_error without retry-after, named by `error.details.error_code`), a spend
  // limit set on the organisation or workspace (a 400), prepaid credits gone (a 400).
  if (body?.error?.details?.error_code === "enforced_spend_limit_reached" || BILLING.test(upstreamMessage)) {
    return new ProviderError("auth_error", message, options);
  }
  if (type === "invalid_request_error" || (!type && read.status === 400)) {
    for (const rule of MESSAGE_RULES) {
      if (rule.match.test(upstreamMessage)) {
        return new ProviderError(rule.reason, message, {
          ...options,
          providerSpecific: rule.providerSpecific,
        });
      }
    }
  }
  const rule = TYPE_RULES[type];
  if (rule)
    return new ProviderError(rule.reason, message, { ...options, providerSpecific: rule.providerSpecific });
  if (read.status === 413) return new ProviderError("context_length", message, options);
  return classifyByStatus({ ...read, retryAfterMs }, message);
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

/** One Anthropic error object as it arrives mid-stream: its type and message are required. */
const AnthropicErrorEventSchema = z.looseObject({ type: z.string(), message: z.string() });

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/**
 * Anthropic's `event: error` with `data: {"type": "error", "error": {"type": "overloaded_error",
 * "message": "Overloaded"}}`; the SDK's `error` part carries the inner `{type, message}`. An unknown
 * type counts as api_error (500, server_error): Anthropic stopped the stream on its side.
 * Undefined when the event is not Anthropic's shape.
 */
export function classifyAnthropicErrorEvent(event: unknown): ProviderError | undefined {
  const inner = isObject(event) && event.type === "error" ? event.error : event;
  const parsed = parseErrorBody(AnthropicErrorEventSchema, inner);
  if (!parsed) return undefined;
  const body = { type: "error", error: parsed };
  return classifyAnthropicError(
    eventAsApiCallError(parsed.message, ANTHROPIC_STATUS[parsed.type] ?? 500, body),
  );
}

/** A successful answer that is a refusal ends the hop as content_filter, naming the stop reason. */
export function rejectAnthropicRefusal(result: LanguageModelV3GenerateResult): void {
  if (result.finishReason.unified === "content-filter") {
    throw new ProviderError(
      "content_filter",
      `Anthropic stopped the completion with stop_reason "${result.finishReason.raw ?? "refusal"}"`,
    );
  }
}

/** What the shared adapter and stream reader need to classify Anthropic's failures. */
export const ANTHROPIC_ERRORS: StreamClassifiers = {
  // Called with the error alone: `now` is for tests.
  classify: (error) => classifyAnthropicError(error),
  classifyEvent: classifyAnthropicErrorEvent,
  reportedUsage: anthropicReportedUsage,
};
