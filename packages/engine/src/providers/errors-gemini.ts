import type { LanguageModelV3GenerateResult } from "@ai-sdk/provider";
import { UnsupportedFunctionalityError } from "@ai-sdk/provider";
import { z } from "zod";
import {
  classifyByStatus,
  type HttpFailure,
  optional,
  parseErrorBody,
  parseRawBody,
  readApiCallError,
} from "./ai-sdk/api-call-error.js";
import { namesNoFinish } from "./ai-sdk/from-result.js";
import type { StreamClassifiers, StreamedResult } from "./ai-sdk/from-stream.js";
import { ProviderError, UPSTREAM_TEXT_CHARS } from "./provider-error.js";
import { parseDuration } from "./retry-after.js";
import { geminiReportedUsage } from "./stream-usage.js";

/**
 * Everything Cascade knows about how Gemini fails: HTTP status plus Google's error body (its
 * `google.rpc` details, `RetryInfo.retryDelay` being Gemini's only wait), and Gemini's ways of not
 * answering inside a successful response (a blocked prompt, a filtered candidate). Its stream
 * error chunk needs nothing of its own: the SDK builds an APICallError from its `code`, which
 * classifyGeminiError reads like any other.
 */

/**
 * One `google.rpc` detail: ErrorInfo carries `reason`, RetryInfo carries `retryDelay`. A detail of
 * another shape reads as empty rather than costing the others.
 * https://cloud.google.com/apis/design/errors#error_details
 */
const GoogleErrorDetailSchema = z
  .object({
    "@type": optional(z.string()),
    reason: optional(z.string()),
    retryDelay: optional(z.string()),
  })
  .catch({});

type GoogleErrorDetail = z.infer<typeof GoogleErrorDetailSchema>;

/** Google's error envelope: `{"error": {"code", "message", "status", "details": [...]}}`. */
const GoogleErrorBodySchema = z.object({
  error: optional(
    z.object({
      code: optional(z.number()),
      message: optional(z.string()),
      status: optional(z.string()),
      details: optional(z.array(GoogleErrorDetailSchema)),
    }),
  ),
});

type GoogleErrorBody = z.infer<typeof GoogleErrorBodySchema>;

type Rule = { reason: ProviderError["reason"]; providerSpecific?: boolean };

/**
 * `google.rpc.ErrorInfo` reasons that mean our key is wrong, whatever the status (an invalid key
 * is a 400 INVALID_ARGUMENT). https://cloud.google.com/apis/design/errors#error_info
 */
const AUTH_REASONS =
  /^(API_KEY_INVALID|API_KEY_EXPIRED|API_KEY_SERVICE_BLOCKED|API_KEY_.*_BLOCKED|SERVICE_DISABLED|CONSUMER_INVALID|ACCESS_TOKEN_EXPIRED|BILLING_DISABLED)$/;

/**
 * Gemini `error.status` (the google.rpc code name) → reason, checked after the message rules.
 * https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
 */
const STATUS_RULES: Record<string, Rule> = {
  RESOURCE_EXHAUSTED: { reason: "rate_limited" },
  INTERNAL: { reason: "server_error" },
  UNKNOWN: { reason: "server_error" },
  DATA_LOSS: { reason: "server_error" },
  UNAVAILABLE: { reason: "server_error" },
  // 504: Gemini's own processing deadline passed (long prompts, long thinking); a timeout like our
  // timeout_ms rather than a fault, but equally retryable and counted for breakers.
  DEADLINE_EXCEEDED: { reason: "timeout" },
  UNAUTHENTICATED: { reason: "auth_error" },
  PERMISSION_DENIED: { reason: "auth_error" },
  // "User location is not supported for the API use.", "Gemini API free tier is not available in
  // your country": this provider cannot serve us, another may.
  FAILED_PRECONDITION: { reason: "bad_request", providerSpecific: true },
  // "models/gemini-pro is not found for API version v1beta, or is not supported for generateContent."
  NOT_FOUND: { reason: "bad_request", providerSpecific: true },
};

/** What Gemini's 400 INVALID_ARGUMENT messages mean, in the words it actually uses. */
const MESSAGE_RULES: Array<Rule & { match: RegExp }> = [
  {
    // "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576)."
    match: /input token count.*exceeds the maximum|exceeds the maximum number of tokens|context window/i,
    reason: "context_length",
  },
  {
    // "Developer instruction is not enabled for models/gemma-3-27b-it", "Function calling is not
    // enabled for models/...", "JSON mode is not enabled for models/...": this model lacks a feature.
    match: /is not enabled for models\/|not supported|unsupported/i,
    reason: "bad_request",
    providerSpecific: true,
  },
];

/**
 * The raw body parsed here (Gemini sometimes wraps it in an array, as its stream errors do); a body
 * that is not JSON (a proxy's HTML page) falls back to whatever the SDK parsed.
 */
function bodyOf(failure: HttpFailure): GoogleErrorBody | undefined {
  let body = parseRawBody(failure.rawBody) ?? failure.body;
  if (Array.isArray(body)) body = body[0];
  return parseErrorBody(GoogleErrorBodySchema, body);
}

/**
 * Gemini's wait, from the `google.rpc.RetryInfo` detail: a protobuf Duration such as "17s", "1.5s"
 * or "45.837906927s". Gemini sends no Retry-After header.
 * https://ai.google.dev/gemini-api/docs/rate-limits
 */
export function retryDelayMs(details: GoogleErrorDetail[] | null | undefined): number | undefined {
  for (const detail of details ?? []) {
    if (!detail["@type"]?.endsWith("google.rpc.RetryInfo") || typeof detail.retryDelay !== "string") continue;
    const milliseconds = parseDuration(detail.retryDelay);
    if (milliseconds !== undefined) return Math.ceil(milliseconds);
  }
  return undefined;
}

/** Classifies a failed Gemini generateContent call from status plus parsed error body. */
export function classifyGeminiError(error: unknown): ProviderError {
  // Thrown by @ai-sdk/google before any HTTP call (a message order or part it cannot send).
  if (UnsupportedFunctionalityError.isInstance(error)) {
    return new ProviderError("bad_request", error.message, { providerSpecific: true, cause: error });
  }
  const read = readApiCallError(error);
  if (read instanceof ProviderError) return read;
  const details = bodyOf(read)?.error;
  const status = details?.status ?? "";
  const upstreamMessage = details?.message ?? read.message;
  const message = `HTTP ${read.status}${status ? ` ${status}` : ""}: ${upstreamMessage}`.slice(
    0,
    UPSTREAM_TEXT_CHARS,
  );
  const retryAfterMs = retryDelayMs(details?.details) ?? read.retryAfterMs;
  const options = { httpStatus: read.status, retryAfterMs, cause: error };

  const errorInfo = details?.details?.find((detail) => detail["@type"]?.endsWith("google.rpc.ErrorInfo"));
  // An invalid key, or prepaid credits gone ("Your prepayment credits are depleted. Please go to AI
  // Studio ... to manage your project and billing."): configuration faults no wait fixes.
  if (
    (errorInfo?.reason && AUTH_REASONS.test(errorInfo.reason)) ||
    /prepayment credits/i.test(upstreamMessage)
  ) {
    return new ProviderError("auth_error", message, options);
  }
  if (read.status === 400 && (status === "INVALID_ARGUMENT" || !status)) {
    for (const rule of MESSAGE_RULES) {
      if (rule.match.test(upstreamMessage)) {
        return new ProviderError(rule.reason, message, {
          ...options,
          providerSpecific: rule.providerSpecific,
        });
      }
    }
  }
  const rule = STATUS_RULES[status];
  if (rule)
    return new ProviderError(rule.reason, message, { ...options, providerSpecific: rule.providerSpecific });
  return classifyByStatus({ ...read, retryAfterMs }, message);
}

/** What the shared adapter and stream reader need to classify Gemini's failures. */
export const GEMINI_ERRORS: StreamClassifiers = {
  classify: classifyGeminiError,
  reportedUsage: geminiReportedUsage,
};

/** `value[key]` when value is an object, else undefined: a read of an unvalidated body. */
function fieldOf(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

const blockedPrompt = (blockReason: string) =>
  new ProviderError(
    "content_filter",
    `Gemini blocked the prompt (promptFeedback.blockReason ${blockReason})`,
  );

const filteredCandidate = (result: LanguageModelV3GenerateResult) =>
  new ProviderError(
    "content_filter",
    `Gemini stopped the candidate with finishReason ${result.finishReason.raw ?? "SAFETY"}`,
  );

/**
 * Finish reasons the SDK reports as "other" that are no finished answer: the candidate was cut
 * for an unsupported language (a filter), or ended for a reason Gemini does not name, or in a
 * tool call it could not make. Taken as "stop" they passed a cut answer on as whole.
 * https://ai.google.dev/api/generate-content#FinishReason
 */
const FILTERED_OTHER = new Set(["LANGUAGE", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"]);
/**
 * Every other reason the SDK calls "other" (OTHER, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
 * MALFORMED_RESPONSE, MISSING_THOUGHT_SIGNATURE, IMAGE_OTHER, NO_IMAGE, and any Gemini adds later)
 * is not STOP either: invalid_response, and the chain moves on. FINISH_REASON_UNSPECIFIED, the
 * enum's default, names no reason at all: the shared reading of an answer without a finish reason
 * (namesNoFinish) takes it, as it takes a candidate without `finishReason`.
 */
function rejectUnfinished(result: LanguageModelV3GenerateResult): void {
  const raw = result.finishReason.raw;
  if (raw === undefined || result.finishReason.unified !== "other" || namesNoFinish(result.finishReason))
    return;
  if (FILTERED_OTHER.has(raw)) throw filteredCandidate(result);
  throw new ProviderError("invalid_response", `Gemini ended the candidate with finishReason ${raw}`);
}

/**
 * Gemini's own ways of not answering, as reasons: a blocked prompt (`promptFeedback.blockReason`,
 * no candidates) and a filtered candidate (SAFETY, RECITATION, PROHIBITED_CONTENT, ...) are
 * content_filter; no candidate and no block reason is invalid_response.
 *
 * This runs on every successful answer, so it reads the two fields it needs with typeof checks
 * rather than a zod parse (which allocates a copy of what it reads); the SDK validated the body.
 * https://ai.google.dev/api/generate-content#generatecontentresponse
 */
export function rejectGeminiRefusal(result: LanguageModelV3GenerateResult): void {
  const body = result.response?.body;
  const candidates = fieldOf(body, "candidates");
  const candidate = Array.isArray(candidates) ? candidates[0] : undefined;
  const finishReason = fieldOf(candidate, "finishReason");
  const blockReason = fieldOf(fieldOf(body, "promptFeedback"), "blockReason");
  if (
    !(typeof finishReason === "string" && finishReason && !namesNoFinish(result.finishReason)) &&
    typeof blockReason === "string" &&
    blockReason &&
    !/UNSPECIFIED/.test(blockReason)
  ) {
    throw blockedPrompt(blockReason);
  }
  if (result.finishReason.unified === "content-filter") throw filteredCandidate(result);
  rejectUnfinished(result);
  if (typeof candidate !== "object" || candidate === null) {
    throw new ProviderError("invalid_response", "Gemini answered without a candidate");
  }
}

const PromptFeedbackSchema = z.object({ blockReason: optional(z.string()) });

/**
 * rejectGeminiRefusal for a stream, which has no response body to read: the SDK reports a blocked
 * prompt (a confirmed `promptFeedback.blockReason`) and a filtered candidate as a content-filter
 * finish.
 */
export function rejectGeminiStreamedRefusal(result: StreamedResult): void {
  rejectUnfinished(result);
  if (result.finishReason.unified !== "content-filter") return;
  const feedback = parseErrorBody(PromptFeedbackSchema, result.providerMetadata?.google?.promptFeedback);
  const blockReason = feedback?.blockReason;
  throw blockReason && result.finishReason.raw === blockReason
    ? blockedPrompt(blockReason)
    : filteredCandidate(result);
}
