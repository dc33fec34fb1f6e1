import { classifyByStatus, readApiCallError } from "./ai-sdk/api-call-error.js";
import { ProviderError } from "./provider-error.js";

interface OpenAIErrorBody {
  error?: { message?: string; type?: string; code?: string | null; param?: string | null };
  // vLLM and some compatible servers answer {object: "error", message, type, code}.
  message?: string | Record<string, unknown>;
  type?: string;
  code?: string | number | null;
}

/**
 * OpenAI error codes and types worth telling apart; anything else falls to the status rules.
 * https://platform.openai.com/docs/guides/error-codes
 */
const CODE_RULES: Array<{ match: RegExp; reason: ProviderError["reason"]; providerSpecific?: boolean }> = [
  { match: /^context_length_exceeded$|^string_above_max_length$/, reason: "context_length" },
  {
    // DashScope (Qwen) reports its moderation as data_inspection_failed.
    match:
      /^content_filter$|^content_policy_violation$|^ResponsibleAIPolicyViolation$|^data_inspection_failed$/i,
    reason: "content_filter",
  },
  {
    match: /^unsupported_parameter$|^unsupported_value$|^model_not_found$|^unsupported_model$/,
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    match: /^invalid_api_key$|^insufficient_quota$|^account_deactivated$|^billing_hard_limit_reached$/,
    reason: "auth_error",
  },
];

const MESSAGE_RULES: Array<{ match: RegExp; reason: ProviderError["reason"]; providerSpecific?: boolean }> = [
  {
    match: /maximum context length|context length|context window|too many tokens|prompt is too long/i,
    reason: "context_length",
  },
  {
    // OpenRouter's moderation answers 403 "...Your input was flagged for ...".
    match:
      /content (management )?policy|content filter|flagged as potentially violating|input was flagged|requires moderation/i,
    reason: "content_filter",
  },
  {
    // Mistral answers 422 "Extra inputs are not permitted" for OpenAI parameters it lacks (seed, user).
    match:
      /unsupported (parameter|value)|is not supported with this model|does not support|extra inputs are not permitted/i,
    reason: "bad_request",
    providerSpecific: true,
  },
];

/** Classifies a failed call to an OpenAI-compatible endpoint from status plus parsed error body. */
export function classifyOpenAIError(error: unknown): ProviderError {
  const read = readApiCallError(error);
  if (read instanceof ProviderError) return read;
  const body = (read.body ?? {}) as OpenAIErrorBody;
  const code = String(body.error?.code ?? body.code ?? body.error?.type ?? "");
  const rawMessage = body.error?.message ?? body.message ?? read.message;
  // Some servers (Mistral's 422s) put an object where the message belongs.
  const upstreamMessage = typeof rawMessage === "string" ? rawMessage : JSON.stringify(rawMessage);
  const message = `HTTP ${read.status}${code ? ` ${code}` : ""}: ${upstreamMessage}`.slice(0, 500);
  const options = { httpStatus: read.status, retryAfterMs: read.retryAfterMs, cause: error };

  if (read.status === 400 || read.status === 422 || read.status === 403 || read.status === 429) {
    for (const rule of CODE_RULES) {
      if (code && rule.match.test(code)) {
        return new ProviderError(rule.reason, message, {
          ...options,
          providerSpecific: rule.providerSpecific,
        });
      }
    }
  }
  if (read.status === 400 || read.status === 422 || read.status === 413 || read.status === 403) {
    for (const rule of MESSAGE_RULES) {
      if (rule.match.test(upstreamMessage)) {
        return new ProviderError(rule.reason, message, {
          ...options,
          providerSpecific: rule.providerSpecific,
        });
      }
    }
    if (read.status === 413) return new ProviderError("context_length", message, options);
    if (read.status === 403) return classifyByStatus(read, message);
  }
  return classifyByStatus(read, message);
}
