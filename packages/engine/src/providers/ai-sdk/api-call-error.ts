import { APICallError } from "@ai-sdk/provider";
import type { z } from "zod";
import { ProviderError } from "../provider-error.js";
import { retryAfterMsFromHeaders } from "../retry-after.js";
import { anthropicReportedUsage, geminiReportedUsage, openAIReportedUsage } from "../stream-usage.js";
import type { CompletionUsage } from "../types.js";

/**
 * A field of a provider's error body: undefined when absent, null or of another type than the one
 * documented, so that one odd field (a compatible server's number where OpenAI sends a string)
 * does not cost the classifier the rest of the body.
 */
export function optional<Schema extends z.ZodType>(schema: Schema) {
  return schema.nullish().catch(undefined);
}

/**
 * A provider's error body read through its schema; undefined when the body is not the provider's
 * shape at all (a proxy's HTML page, a bare string), which leaves status-only classification.
 */
export function parseErrorBody<Body>(schema: z.ZodType<Body>, body: unknown): Body | undefined {
  const parsed = schema.safeParse(body);
  return parsed.success ? parsed.data : undefined;
}

/** The raw response body as JSON, or undefined when there is none or it is not JSON. */
export function parseRawBody(rawBody: string | undefined): unknown {
  if (!rawBody) return undefined;
  try {
    return JSON.parse(rawBody);
  } catch {
    return undefined;
  }
}

/**
 * A provider's mid-stream error event presented as the HTTP error the provider would have
 * answered with had it failed before streaming, so one classifier serves both.
 */
export function eventAsApiCallError(message: string, statusCode: number, body: unknown): APICallError {
  return new APICallError({
    message,
    url: "",
    requestBodyValues: {},
    statusCode,
    responseBody: JSON.stringify(body),
    data: body,
  });
}

/** What a classifier reads from a failed HTTP call, whatever the provider. */
export interface HttpFailure {
  status: number;
  headers: Record<string, string> | undefined;
  /** The parsed error body (AI SDK `data`, else the body parsed here), or undefined. */
  body: unknown;
  rawBody: string | undefined;
  message: string;
  retryAfterMs: number | undefined;
}

function parseBody(error: APICallError): unknown {
  return error.data !== undefined ? error.data : parseRawBody(error.responseBody);
}

/** Error codes of a connection that broke while the body was arriving (undici, Node, Bun). */
const TRANSPORT_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_ABORTED",
  "ConnectionClosed",
]);

/** The errors of `error`'s cause chain, `error` first. */
function causeChain(error: unknown): Error[] {
  const chain: Error[] = [];
  let current = error;
  while (current instanceof Error && !chain.includes(current)) {
    chain.push(current);
    current = current.cause;
  }
  return chain;
}

const codeOf = (error: Error) => (error as { code?: unknown }).code;

/**
 * Whether `error`, or an error it was caused by, is a connection that broke (TRANSPORT_CODES,
 * undici's "terminated", which fetch also raises when the Agent cuts an answer past its size bound).
 */
export function isTransportFailure(error: unknown): boolean {
  return causeChain(error).some((item) => {
    const code = codeOf(item);
    if (typeof code === "string" && TRANSPORT_CODES.has(code)) return true;
    // undici's fetch fails a body cut short with TypeError("terminated").
    return item instanceof TypeError && /terminated|network|socket/i.test(item.message);
  });
}

/** Whether the Agent cut the answer at MAX_PROVIDER_RESPONSE_BYTES (undici's max-size error). */
function exceededMaxSize(error: unknown): boolean {
  return causeChain(error).some((item) => codeOf(item) === "UND_ERR_RES_EXCEEDED_MAX_SIZE");
}

/** The last Error of `error`'s cause chain (`error` itself when it has no cause). */
function innermostCause(error: unknown): Error | undefined {
  return causeChain(error).at(-1);
}

/**
 * The first step every AI SDK-based classifier shares: errors that are not HTTP answers
 * (network failures, malformed bodies) get their reason here; HTTP failures are returned for
 * the provider's own table to classify.
 */
export function readApiCallError(error: unknown): ProviderError | HttpFailure {
  if (error instanceof ProviderError) return error;
  if (APICallError.isInstance(error)) {
    if (error.statusCode === undefined) {
      return new ProviderError("network_error", error.message, { cause: error });
    }
    if (error.statusCode >= 200 && error.statusCode < 300) {
      // "Failed to process successful response": the body stopped arriving (the connection broke
      // mid-answer), a network failure as a cut stream is, not a malformed answer.
      // An answer cut at the size bound stays invalid_response, as the lean client reports it.
      if (isTransportFailure(error.cause) && !exceededMaxSize(error.cause)) {
        // The innermost cause says what broke (fetch wraps undici's "other side closed" in its
        // "terminated"; the lean client hands it over as it is).
        const detail = innermostCause(error.cause)?.message;
        return new ProviderError(
          "network_error",
          `the answer broke off: ${error.message}${detail ? `: ${detail}` : ""}`,
          { httpStatus: error.statusCode, cause: error, unreadableAnswer: true },
        );
      }
      // A body that is not JSON, or cut at the size bound, could not be read: generated whole,
      // it is charged so. One that parsed but is not what the client takes says what it cost where
      // it carries usage; an error envelope (some proxies send one with a 200) that nothing was
      // generated; anything else is charged as unread.
      const body = exceededMaxSize(error.cause) ? undefined : parsedBody(error.responseBody);
      const usage = body === undefined ? undefined : bodyUsage(body);
      const envelope = typeof body === "object" && body !== null && "error" in body;
      return new ProviderError("invalid_response", `${error.message} (HTTP ${error.statusCode})`, {
        httpStatus: error.statusCode,
        cause: error,
        unreadableAnswer: usage === undefined && !envelope,
        ...(usage ? { usage } : {}),
      });
    }
    return {
      status: error.statusCode,
      headers: error.responseHeaders,
      body: parseBody(error),
      rawBody: error.responseBody,
      message: error.message,
      retryAfterMs: retryAfterMsFromHeaders(error.responseHeaders),
    };
  }
  const name = (error as Error | undefined)?.name ?? "";
  if (/JSONParse|TypeValidation|InvalidResponseData|NoContentGenerated|EmptyResponseBody/.test(name)) {
    // A chat.completion without choices still says what the provider billed.
    const usage = bodyUsage((error as { data?: unknown }).data);
    return new ProviderError("invalid_response", (error as Error).message, {
      cause: error,
      ...(usage ? { usage } : {}),
    });
  }
  if (error instanceof TypeError && /fetch failed/i.test(error.message)) {
    return new ProviderError(
      "network_error",
      `${error.message}: ${String((error.cause as Error)?.message ?? "")}`,
      {
        cause: error,
      },
    );
  }
  return new ProviderError(
    "invalid_response",
    `unexpected provider error: ${(error as Error)?.message ?? String(error)}`,
    {
      cause: error,
    },
  );
}

/** Status-only rules every provider shares; providers refine 400s from their bodies first. */
export function classifyByStatus(failure: HttpFailure, message: string, param?: string): ProviderError {
  const { status } = failure;
  const options = { httpStatus: status, retryAfterMs: failure.retryAfterMs, param };
  if (status === 429) return new ProviderError("rate_limited", message, options);
  // 402: an empty prepaid balance (DeepSeek, OpenRouter): a billing fault no wait fixes.
  if (status === 401 || status === 402 || status === 403)
    return new ProviderError("auth_error", message, options);
  if (status === 408) return new ProviderError("timeout", message, options);
  // A body too large for this provider: the prompt, as OpenAI's and Anthropic's tables say too.
  if (status === 413) return new ProviderError("context_length", message, options);
  if (status >= 500) return new ProviderError("server_error", message, options);
  // Only a 400 or 422 says the request itself is wrong (contract, "Fall back or fail"); any
  // other 4xx (404 unknown model name here, 405, 409, 410, 415, 451 blocked in a region, ...)
  // is this provider's refusal, and the request may be fine elsewhere.
  const providerSpecific = status !== 400 && status !== 422;
  return new ProviderError("bad_request", message, { ...options, providerSpecific });
}

/** A 2xx answer's body as JSON; undefined when it is not JSON (or absent). */
function parsedBody(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The usage a parsed answer body reports, in OpenAI's, Anthropic's or Gemini's shape, read as each
 * provider's stream events are (stream-usage.ts: the SDK's counts, cache splits included); none
 * where it names no prompt tokens (a report of 0 is no report, as call-charge.ts has it).
 */
function bodyUsage(body: unknown): CompletionUsage | undefined {
  const reported =
    openAIReportedUsage(body, undefined) ??
    anthropicReportedUsage({ type: "message_start", message: body }, undefined) ??
    geminiReportedUsage(body, undefined);
  if (!reported?.promptTokens) return undefined;
  const { promptTokens, completionTokens = 0, cachedTokens, cacheWriteTokens } = reported;
  return {
    promptTokens,
    completionTokens,
    ...(cachedTokens !== undefined ? { cachedTokens } : {}),
    ...(cacheWriteTokens !== undefined ? { cacheWriteTokens } : {}),
  };
}
