import { z } from "zod";
import {
  classifyByStatus,
  eventAsApiCallError,
  optional,
  parseErrorBody,
  readApiCallError,
} from "./ai-sdk/api-call-error.js";
import type { StreamClassifiers } from "./ai-sdk/from-stream.js";
import { ProviderError, UPSTREAM_TEXT_CHARS } from "./provider-error.js";
import { openAIReportedUsage } from "./stream-usage.js";

/**
 * Everything Cascade knows about how OpenAI and OpenAI-compatible servers fail: HTTP status plus
 * error body, and the error chunk that ends a stream. (Their Retry-After relatives, `retry-after-ms`
 * and `x-ratelimit-reset-*`, are read for every provider by retry-after.ts, since compatible
 * gateways in front of other models send them too.)
 */

/** A code or type: OpenAI sends strings; some compatible servers send the HTTP status as a number. */
const CodeSchema = z.union([z.string(), z.number()]);

/** A message: a string from OpenAI; an object or array of details from some compatible servers. */
const MessageSchema = z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]);

/**
 * OpenAI's error envelope, `{"error": {"message", "type", "param", "code"}}`; vLLM and some
 * compatible servers answer `{"object": "error", "message", "type", "code"}` instead, Mistral's
 * 422s put an object where the message belongs, and FastAPI-built servers (Mistral's validation
 * among them) answer `{"detail": [...]}` alone.
 * https://platform.openai.com/docs/guides/error-codes
 */
const OpenAIErrorBodySchema = z.object({
  error: optional(
    z.object({
      message: optional(MessageSchema),
      type: optional(CodeSchema),
      code: optional(CodeSchema),
      param: optional(z.string()),
    }),
  ),
  message: optional(MessageSchema),
  detail: optional(MessageSchema),
  type: optional(CodeSchema),
  code: optional(CodeSchema),
});

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
    // Mistral answers 422 "Extra inputs are not permitted" for OpenAI parameters it lacks (seed, user),
    // and 400 "Tool call id was call_… but must be a-z, A-Z, 0-9, with a length of 9." for another
    // vendor's tool call ids (refitted for Mistral's hosts, openai.ts; a Mistral model elsewhere).
    // DeepSeek answers 400 "This response_format type is unavailable now" for json_schema.
    match:
      /unsupported (parameter|value)|is not supported with this model|does not support|extra inputs are not permitted|tool call id was .* but must be|response_format type is unavailable/i,
    reason: "bad_request",
    providerSpecific: true,
  },
];

/**
 * A FastAPI/pydantic validation body (`[{loc, msg, type, input}]`, bare or under `detail`) as
 * `body.seed: Extra inputs are not permitted`: the server's words only, never the `input` it
 * echoes (the caller's own text, which the message rules must not read). Anything else as JSON.
 */
function messageOfDetail(raw: unknown): string {
  const detail = Array.isArray(raw) ? raw : (raw as { detail?: unknown } | null | undefined)?.detail;
  if (Array.isArray(detail) && detail.length > 0) {
    const parts = detail.map((item) => {
      const { loc, msg } = (item ?? {}) as { loc?: unknown; msg?: unknown };
      if (typeof msg !== "string") return undefined;
      return Array.isArray(loc) && loc.length > 0 ? `${loc.join(".")}: ${msg}` : msg;
    });
    if (parts.every((part) => part !== undefined)) return parts.join("; ");
  }
  return JSON.stringify(raw);
}

/** Classifies a failed call to an OpenAI-compatible endpoint from status plus parsed error body. */
export function classifyOpenAIError(error: unknown): ProviderError {
  const read = readApiCallError(error);
  if (read instanceof ProviderError) return read;
  const body = parseErrorBody(OpenAIErrorBodySchema, read.body);
  const code = String(body?.error?.code ?? body?.code ?? body?.error?.type ?? "");
  const rawMessage = body?.error?.message ?? body?.message ?? body?.detail ?? read.message;
  // Some servers (Mistral's 422s) put an object where the message belongs.
  const upstreamMessage = typeof rawMessage === "string" ? rawMessage : messageOfDetail(rawMessage);
  const message = `HTTP ${read.status}${code ? ` ${code}` : ""}: ${upstreamMessage}`.slice(
    0,
    UPSTREAM_TEXT_CHARS,
  );
  // The request field OpenAI names as the fault (`"param": "temperature"`), for the caller's 400.
  const param = body?.error?.param?.slice(0, 256) ?? undefined;
  const options = { httpStatus: read.status, retryAfterMs: read.retryAfterMs, param, cause: error };

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
    if (read.status === 403) return classifyByStatus(read, message, param);
  }
  return classifyByStatus(read, message, param);
}

/** One OpenAI error object as it arrives mid-stream: only its message is required. */
const OpenAIErrorEventSchema = z.looseObject({
  message: z.string(),
  type: optional(CodeSchema),
  code: optional(CodeSchema),
});

/**
 * The status an OpenAI error object stands for: its numeric `code` where it has one (some
 * compatible servers send `"code": 503`), else its `code`/`type` words; a bare error is a 500
 * (OpenAI's own mid-stream errors are `"type": "server_error"`).
 */
function openAIStatus(error: z.infer<typeof OpenAIErrorEventSchema>): number {
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/**
 * OpenAI's mid-stream error chunk, `data: {"error": {"message", "type", "param", "code"}}`; the
 * SDK's `error` part carries the inner object (and the whole frame when it throws before output).
 * Undefined when the event is not OpenAI's shape.
 */
export function classifyOpenAIErrorEvent(event: unknown): ProviderError | undefined {
  const inner = isObject(event) && isObject(event.error) ? event.error : event;
  const parsed = parseErrorBody(OpenAIErrorEventSchema, inner);
  if (!parsed) return undefined;
  return classifyOpenAIError(eventAsApiCallError(parsed.message, openAIStatus(parsed), { error: parsed }));
}

/** What the shared adapter and stream reader need to classify OpenAI's failures. */
export const OPENAI_ERRORS: StreamClassifiers = {
  classify: classifyOpenAIError,
  classifyEvent: classifyOpenAIErrorEvent,
  reportedUsage: openAIReportedUsage,
};
