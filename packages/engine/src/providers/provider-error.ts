import type { Reason } from "@cascade/shared";
import type { Completion, CompletionUsage } from "./types.js";

/** The most characters of a failure's message a tenant, a caller or the log is shown. */
export const ERROR_MESSAGE_CHARS = 500;

/**
 * The most characters of an upstream's error text a classifier keeps in its message. Well past
 * ERROR_MESSAGE_CHARS: the message is scrubbed of our keys first and cut to ERROR_MESSAGE_CHARS
 * after (hop-runner), so a key near the shown bound is still whole when it is scrubbed.
 */
export const UPSTREAM_TEXT_CHARS = 8192;

/**
 * A provider call that failed, classified into the contract's reason vocabulary where the error
 * is built (one classifier per provider), so the chain runner never inspects raw error bodies.
 */
export class ProviderError extends Error {
  readonly reason: Reason;
  readonly httpStatus: number | undefined;
  /** Minimum wait before calling this provider again (Retry-After and its relatives). */
  readonly retryAfterMs: number | undefined;
  /**
   * For `bad_request`: true when the 400 is provider-specific (an unsupported parameter, an
   * unknown model name) and so the next hop may well succeed.
   */
  readonly providerSpecific: boolean;
  /**
   * What the provider billed for the call, where its answer said (a completion stopped by a
   * content filter carries usage): the call is charged this although it failed.
   */
  readonly usage: CompletionUsage | undefined;
  /**
   * The request field the provider named as the fault (OpenAI's `error.param`), where it named
   * one: the gateway's 400 for the caller's request passes it on.
   */
  readonly param: string | undefined;
  /**
   * A 2xx answer whose body could not be read: not JSON, or broken off. Not streamed, it was
   * generated (and billed) whole before it was sent; a body that parsed (an error envelope, no
   * choices) says what it cost, or that nothing was generated.
   */
  readonly unreadableAnswer: boolean;
  /**
   * A `timeout` of Cascade's own clocks (timeout_ms, first_token_timeout_ms, idle_timeout_ms): the
   * call was abandoned while the provider worked on it. A provider's own timeout answer (an HTTP
   * 408, Gemini's DEADLINE_EXCEEDED, Anthropic's timeout_error) is an error it does not bill.
   */
  readonly localTimeout: boolean;
  /**
   * A whole answer not passed on (it carried no finish reason): charged as the completion it is,
   * its reported usage, else estimated from its text (`completionChargeUsage`).
   */
  readonly unfinishedAnswer: Completion | undefined;
  /**
   * Refused before anything was sent to the provider (an image URL the guard refuses, an image
   * that could not be downloaded for it): no upstream call was made, so the attempt is `skipped`.
   */
  readonly unsent: boolean;

  constructor(
    reason: Reason,
    message: string,
    options: {
      httpStatus?: number;
      retryAfterMs?: number;
      providerSpecific?: boolean;
      usage?: CompletionUsage;
      param?: string;
      cause?: unknown;
      unreadableAnswer?: boolean;
      localTimeout?: boolean;
      unfinishedAnswer?: Completion;
      unsent?: boolean;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ProviderError";
    this.reason = reason;
    this.httpStatus = options.httpStatus;
    this.retryAfterMs = options.retryAfterMs;
    this.providerSpecific = options.providerSpecific ?? false;
    this.usage = options.usage;
    this.param = options.param;
    this.unreadableAnswer = options.unreadableAnswer ?? false;
    this.localTimeout = options.localTimeout ?? false;
    this.unsent = options.unsent ?? false;
    this.unfinishedAnswer = options.unfinishedAnswer;
  }

  /** Whether the same hop may be tried again (contract, "Retries and timeouts"). */
  get isRetryable(): boolean {
    return (
      this.reason === "server_error" ||
      this.reason === "timeout" ||
      this.reason === "network_error" ||
      this.reason === "invalid_response" ||
      this.reason === "rate_limited"
    );
  }
}

/**
 * A non-streamed answer whose provider reported no finish reason (OpenAI's `finish_reason: null`,
 * Anthropic's `stop_reason: null`, a Gemini candidate without `finishReason`): nothing says it
 * ended rather than was cut short (a server that aborted the generation), so it is not passed on
 * as a finished answer any more than a stream without one is. The chain moves on; the call is
 * charged what its answer shows.
 */
export function unfinishedAnswerError(completion: Completion): ProviderError {
  return new ProviderError(
    "invalid_response",
    "the answer carried no finish reason: the provider did not say it had ended (it may be cut short)",
    { unfinishedAnswer: completion },
  );
}
