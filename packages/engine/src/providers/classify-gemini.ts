import { UnsupportedFunctionalityError } from "@ai-sdk/provider";
import { classifyByStatus, type HttpFailure, readApiCallError } from "./ai-sdk/api-call-error.js";
import { ProviderError } from "./provider-error.js";
import { parseDuration } from "./retry-after.js";

/** One `google.rpc` detail: ErrorInfo carries `reason`, RetryInfo carries `retryDelay`. */
interface GoogleErrorDetail {
  "@type"?: string;
  reason?: string;
  retryDelay?: string;
}

/** Google's error envelope: `{"error": {"code", "message", "status", "details": [...]}}`. */
interface GoogleErrorBody {
  error?: { code?: number; message?: string; status?: string; details?: GoogleErrorDetail[] };
}

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

/** The raw body parsed here (Gemini sometimes wraps it in an array, as its stream errors do). */
function bodyOf(failure: HttpFailure): GoogleErrorBody {
  let body: unknown = failure.body;
  if (failure.rawBody) {
    try {
      body = JSON.parse(failure.rawBody);
    } catch {
      // not JSON (a proxy's HTML page): keep whatever the SDK parsed
    }
  }
  if (Array.isArray(body)) body = body[0];
  return (body ?? {}) as GoogleErrorBody;
}

/**
 * Gemini's wait, from the `google.rpc.RetryInfo` detail: a protobuf Duration such as "17s", "1.5s"
 * or "45.837906927s". Gemini sends no Retry-After header.
 * https://ai.google.dev/gemini-api/docs/rate-limits
 */
export function retryDelayMs(details: GoogleErrorDetail[] | undefined): number | undefined {
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
  const details = bodyOf(read).error;
  const status = details?.status ?? "";
  const upstreamMessage = details?.message ?? read.message;
  const message = `HTTP ${read.status}${status ? ` ${status}` : ""}: ${upstreamMessage}`.slice(0, 500);
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
