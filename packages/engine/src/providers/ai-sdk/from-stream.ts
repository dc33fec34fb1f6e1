import {
  APICallError,
  type LanguageModelV3,
  type LanguageModelV3CallOptions,
  type LanguageModelV3Content,
  type LanguageModelV3FinishReason,
  type LanguageModelV3GenerateResult,
  type LanguageModelV3StreamPart,
  type LanguageModelV3Usage,
  type SharedV3ProviderMetadata,
} from "@ai-sdk/provider";
import { ProviderError, UPSTREAM_TEXT_CHARS } from "../provider-error.js";
import type { ChoiceLogprobs, ReportedUsage, StreamSink } from "../types.js";
import { isTransportFailure } from "./api-call-error.js";
import { namesNoFinish } from "./from-result.js";

/** What one provider contributes to reading its stream. */
export interface StreamClassifiers {
  /** The provider's classifier, the same one `generate` uses (HTTP errors before the stream, SDK errors). */
  classify(error: unknown): ProviderError;
  /**
   * An `error` stream part whose payload is the provider's own error object rather than an Error
   * (OpenAI's `{"error": {...}}` chunk, Anthropic's `event: error`), as a ProviderError; undefined
   * when the shape is not the provider's.
   */
  classifyEvent?(error: unknown): ProviderError | undefined;
  /**
   * The usage reported so far once this raw chunk (the provider's event, as the SDK parsed it) is
   * read, given what was reported before it; undefined when the chunk reports none. A stream that
   * fails after the provider reported usage is charged it (ADR 0013, fifth revision).
   */
  reportedUsage?(rawChunk: unknown, before: ReportedUsage | undefined): ReportedUsage | undefined;
}

/**
 * An error thrown while reading the stream. The SDK wraps a failed body read as an APICallError
 * carrying the response's 2xx status ("Failed to process successful response"), which the shared
 * classifier would call invalid_response; a body that stopped arriving is a network failure.
 */
export function classifyReadFailure(error: unknown, classifiers: StreamClassifiers): ProviderError {
  if (error instanceof ProviderError) return error;
  const bodyReadFailed =
    APICallError.isInstance(error) &&
    error.statusCode !== undefined &&
    error.statusCode >= 200 &&
    error.statusCode < 300;
  if (bodyReadFailed || isTransportFailure(error)) {
    const cause = (error as Error).cause as Error | undefined;
    const detail = cause?.message
      ? `${(error as Error).message}: ${cause.message}`
      : (error as Error).message;
    return new ProviderError("network_error", `the stream broke off: ${detail}`, { cause: error });
  }
  return classifiers.classify(error);
}

/**
 * A mid-stream error as a ProviderError. The HTTP answer was a 200, so the error's own status (the
 * one the SDK or we derived from the event to run the provider's classifier) is not reported.
 */
function midStream(error: ProviderError): ProviderError {
  const message = error.message.replace(/^HTTP \d{3} /, "");
  return new ProviderError(error.reason, `error event mid-stream: ${message}`, {
    retryAfterMs: error.retryAfterMs,
    providerSpecific: error.providerSpecific,
    cause: error.cause ?? error,
  });
}

/**
 * An `error` stream part as a ProviderError. Errors the SDK built (Gemini's error chunk as an
 * APICallError, JSONParseError / TypeValidationError for a malformed chunk → invalid_response) go
 * through the provider's classifier; the provider's raw error objects through its event mapping.
 * An error object nobody recognises is server_error: the provider chose to stop the stream with an
 * error, so it is the provider's fault and retryable, rather than a reply we failed to understand
 * (invalid_response) — both count for breakers, so only the reported reason differs.
 */
export function classifyErrorPart(error: unknown, classifiers: StreamClassifiers): ProviderError {
  if (error instanceof Error) return midStream(classifiers.classify(error));
  const event = classifiers.classifyEvent?.(error);
  if (event) return midStream(event);
  const message =
    (error as { message?: unknown } | undefined)?.message ??
    (error as { error?: { message?: unknown } } | undefined)?.error?.message;
  return new ProviderError(
    "server_error",
    `error event mid-stream: ${typeof message === "string" ? message : JSON.stringify(error)}`.slice(
      0,
      UPSTREAM_TEXT_CHARS,
    ),
    { cause: error },
  );
}

/**
 * An APICallError the SDK raised from the stream's first events (OpenAI and Anthropic peek at them
 * so that an error before any output fails `doStream` itself): it carries the 200's headers, an
 * event stream, and a status the SDK guessed, with the event itself as the body.
 */
function isStreamEventError(error: unknown): error is APICallError {
  if (!APICallError.isInstance(error)) return false;
  const headers = error.responseHeaders ?? {};
  const type = Object.entries(headers).find(([name]) => name.toLowerCase() === "content-type")?.[1];
  return /^text\/event-stream/i.test(type ?? "");
}

function parseBody(error: APICallError): unknown {
  if (error.data !== undefined) return error.data;
  try {
    return JSON.parse(error.responseBody ?? "");
  } catch {
    return undefined;
  }
}

/** The first choice of an OpenAI chunk, as far as the assembler reads it. */
interface RawChoice {
  delta?: { refusal?: unknown } | null;
  logprobs?: { content?: unknown; refusal?: unknown } | null;
}

/** The first choice of an OpenAI chunk, if the raw chunk is one. */
function firstChoiceOf(raw: unknown): RawChoice | undefined {
  const choices = (raw as { choices?: RawChoice[] } | null)?.choices;
  return Array.isArray(choices) ? choices[0] : undefined;
}

/** The refusal text of an OpenAI chunk's choice (`delta.refusal`), if it carries one. */
function refusalDeltaOf(choice: RawChoice | undefined): string | undefined {
  const value = choice?.delta?.refusal;
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

const hasEntries = (value: unknown): value is unknown[] => Array.isArray(value) && value.length > 0;

/**
 * The log probabilities of a stream's chunks: each chunk's object handed on with the text it came
 * with, unchanged, and every entry gathered for the whole answer (a job's result), as OpenAI's
 * non-streamed `logprobs` holds them. Made only for a stream whose provider sent some (asked for).
 */
class StreamedLogprobs {
  /**
   * A chunk's object not yet handed on: its text comes in the next text part, or, when no text
   * follows, it goes alone once the stream finished (StreamAssembler.result).
   */
  pending: ChoiceLogprobs | undefined;
  private content: unknown[] | undefined;
  private refusal: unknown[] | undefined;

  read(logprobs: { content?: unknown; refusal?: unknown }): void {
    const { content, refusal } = logprobs;
    if (Array.isArray(content)) {
      this.content ??= [];
      this.content.push(...content);
    }
    if (Array.isArray(refusal)) {
      this.refusal ??= [];
      this.refusal.push(...refusal);
    }
    // A chunk without entries (OpenAI's role chunk says `content: []`) has nothing to hand on.
    if (!hasEntries(content) && !hasEntries(refusal)) return;
    // An earlier chunk's entries that came with no text of their own go with this chunk's text.
    this.pending =
      this.pending === undefined
        ? logprobs
        : {
            content: joined(this.pending.content, content),
            refusal: joined(this.pending.refusal, refusal),
          };
  }

  /** The pending object, handed on once. */
  take(): ChoiceLogprobs | undefined {
    const pending = this.pending;
    this.pending = undefined;
    return pending;
  }

  whole(): ChoiceLogprobs {
    return { content: this.content ?? null, refusal: this.refusal ?? null };
  }
}

function joined(first: unknown, second: unknown): unknown[] | null {
  if (!Array.isArray(first)) return Array.isArray(second) ? second : null;
  return Array.isArray(second) ? [...first, ...second] : first;
}

/** Stream parts that are the model's output: the first one is the "first token". */
const OUTPUT_PARTS = new Set<string>([
  "text-delta",
  "reasoning-delta",
  "tool-input-start",
  "tool-input-delta",
  "tool-call",
]);

/** What was read from a stream, shaped as a generate result so each adapter's checks apply unchanged. */
export type StreamedResult = LanguageModelV3GenerateResult;

/**
 * Assembles the parts of a `doStream` stream, one at a time, into a generate-shaped result,
 * forwarding text and tool-call argument deltas to the sink as they arrive. `push` throws a
 * ProviderError for an error part; `result` for a stream that ended without the provider's finish
 * (a truncated stream: network_error) or without any of its events. Shared by the SDK's streams
 * (readStream) and the lean OpenAI client, which pushes the parts the SDK would make.
 */
export class StreamAssembler {
  private text = "";
  private sawText = false;
  // OpenAI's `delta.refusal`, which the SDK streams as text: told apart by the raw chunk before it.
  private refusal: string | undefined;
  private chunkRefusal: string | undefined;
  private textStarted = false;
  private readonly toolIndex = new Map<string, number>();
  private readonly toolArguments = new Map<string, string>();
  private readonly toolCalls: LanguageModelV3Content[] = [];
  private finish: { finishReason: LanguageModelV3FinishReason; usage: LanguageModelV3Usage } | undefined;
  private providerMetadata: SharedV3ProviderMetadata | undefined;
  private response: StreamedResult["response"];
  private warnings: StreamedResult["warnings"] = [];
  private sawEvents = false;
  private logprobs: StreamedLogprobs | undefined;
  private reported: ReportedUsage | undefined;

  constructor(
    private readonly sink: StreamSink,
    private readonly classifiers: StreamClassifiers,
  ) {}

  private indexOf(id: string, name: string | undefined): number {
    let index = this.toolIndex.get(id);
    if (index === undefined) {
      index = this.toolIndex.size;
      this.toolIndex.set(id, index);
      this.toolArguments.set(id, "");
      this.sink.delta({ toolCalls: [{ index, id, ...(name === undefined ? {} : { name }) }] });
    }
    return index;
  }

  push(part: LanguageModelV3StreamPart): void {
    const { sink } = this;
    // stream-start is the SDK's own, made when the headers came: no sign of the provider's stream.
    if (part.type !== "stream-start") sink.heartbeat?.(OUTPUT_PARTS.has(part.type));
    // OpenAI's and Gemini's finish comes from the SDK's flush, whatever arrived.
    if (part.type !== "stream-start" && part.type !== "raw" && part.type !== "finish") this.sawEvents = true;
    switch (part.type) {
      case "stream-start":
        this.warnings = part.warnings;
        break;
      case "response-metadata":
        this.response = { ...this.response, id: part.id, modelId: part.modelId, timestamp: part.timestamp };
        break;
      case "raw": {
        const reported = this.classifiers.reportedUsage?.(part.rawValue, this.reported);
        if (reported) {
          this.reported = reported;
          sink.usage?.(reported);
        }
        const choice = firstChoiceOf(part.rawValue);
        this.chunkRefusal = refusalDeltaOf(choice);
        // OpenAI sends `logprobs: null` unless they were asked for.
        const logprobs = choice?.logprobs;
        if (typeof logprobs === "object" && logprobs !== null) {
          this.logprobs ??= new StreamedLogprobs();
          this.logprobs.read(logprobs);
        }
        break;
      }
      case "text-delta": {
        if (this.chunkRefusal !== undefined && part.delta === this.chunkRefusal) {
          this.chunkRefusal = undefined;
          this.refusal = (this.refusal ?? "") + part.delta;
          const logprobs = this.logprobs?.take();
          sink.delta(logprobs ? { refusal: part.delta, logprobs } : { refusal: part.delta });
          break;
        }
        if (part.delta) {
          this.sawText = true;
          this.text += part.delta;
          const logprobs = this.logprobs?.take();
          sink.delta(logprobs ? { content: part.delta, logprobs } : { content: part.delta });
        }
        break;
      }
      case "text-start":
        // A refusal's text opens a text part too: an empty one counts as content only without.
        this.textStarted = true;
        break;
      case "tool-input-start":
        this.indexOf(part.id, part.toolName);
        break;
      case "tool-input-delta": {
        const index = this.indexOf(part.id, undefined);
        if (part.delta) {
          this.toolArguments.set(part.id, (this.toolArguments.get(part.id) ?? "") + part.delta);
          sink.delta({ toolCalls: [{ index, arguments: part.delta }] });
        }
        break;
      }
      case "tool-call": {
        const index = this.indexOf(part.toolCallId, part.toolName);
        // A call that arrived whole (no argument deltas) still reaches the sink in full.
        if (!this.toolArguments.get(part.toolCallId) && part.input) {
          this.toolArguments.set(part.toolCallId, part.input);
          sink.delta({ toolCalls: [{ index, arguments: part.input }] });
        }
        this.toolCalls[index] = part;
        break;
      }
      case "finish":
        this.finish = { finishReason: part.finishReason, usage: part.usage };
        this.providerMetadata = part.providerMetadata;
        break;
      case "error":
        throw classifyErrorPart(part.error, this.classifiers);
      default:
        // reasoning, sources, files and raw chunks have no place in a chat.completion.
        break;
    }
  }

  /** The stream's answer once it ended (throws for a stream the provider did not finish). */
  result(): StreamedResult {
    const { finish, refusal } = this;
    // OpenAI and Gemini emit a finish part on any clean end, with no raw reason when the provider
    // never sent one; Anthropic emits it only on message_stop. Either way the provider did not finish.
    if (!finish || namesNoFinish(finish.finishReason)) {
      if (!this.sawEvents) {
        throw new ProviderError("invalid_response", "the response held no stream events the provider sends");
      }
      // A reason that names none (Gemini's FINISH_REASON_UNSPECIFIED) came in a whole stream: the
      // provider's answer, not the connection, says nothing of an end.
      const raw = finish?.finishReason.raw;
      if (raw !== undefined) {
        throw new ProviderError(
          "invalid_response",
          `the stream ended with finish reason "${raw}", which names none (not a finished answer)`,
        );
      }
      throw new ProviderError(
        "network_error",
        "the stream ended before the provider reported a finish reason (truncated stream)",
      );
    }
    // Entries no text came after (sent in a chunk without text of its own: `delta: {}`, an empty
    // content, the finish chunk) go to the sink on a delta of their own, now that the stream is
    // known to be whole, so that every entry the provider sent is shown, in order.
    const trailing = this.logprobs?.take();
    if (trailing) this.sink.delta({ logprobs: trailing });
    const content: LanguageModelV3Content[] = [];
    // An empty text part (a role chunk's `content: ""`) is the content only of an answer with
    // nothing else in it: beside tool calls or a refusal the content is null, as OpenAI's is.
    const toolCalled = this.toolCalls.some((call) => call !== undefined);
    if (this.sawText || (this.textStarted && refusal === undefined && !toolCalled))
      content.push({ type: "text", text: this.text });
    for (const call of this.toolCalls) if (call) content.push(call);
    let providerMetadata = this.providerMetadata;
    if (refusal !== undefined || this.logprobs !== undefined) {
      const cascade: Record<string, unknown> = {};
      if (refusal !== undefined) cascade.refusal = refusal;
      if (this.logprobs !== undefined) cascade.logprobs = this.logprobs.whole();
      providerMetadata = { ...providerMetadata, cascade: cascade as never };
    }
    return {
      content,
      finishReason: finish.finishReason,
      usage: finish.usage,
      providerMetadata,
      response: this.response,
      warnings: this.warnings,
    };
  }
}

/**
 * Reads a `doStream` stream to its end through a StreamAssembler. Rejects with the signal's reason
 * when it aborts, and with a ProviderError for an error part, a malformed chunk, a broken
 * connection, or a stream that ended without the provider's finish.
 */
export async function readStream(
  stream: ReadableStream<LanguageModelV3StreamPart>,
  sink: StreamSink,
  signal: AbortSignal,
  classifiers: StreamClassifiers,
): Promise<StreamedResult> {
  const reader = stream.getReader();
  // Cancelling resolves a pending read as done (and closes the upstream body), so an abort that the
  // transport does not surface still ends the loop at once.
  const onAbort = () => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const assembler = new StreamAssembler(sink, classifiers);
  let done = false;
  try {
    while (true) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw classifyReadFailure(error, classifiers);
      }
      if (signal.aborted) throw signal.reason;
      if (next.done) {
        done = true;
        break;
      }
      assembler.push(next.value);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!done) void reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return assembler.result();
}

/**
 * One `doStream` call read to the end: errors thrown by `doStream` itself (HTTP errors before the
 * stream starts, and errors the SDK raises from the stream's first events) go through the same
 * classifier as `generate`; an abort rethrows the signal's reason, as `generate` does.
 */
export async function streamResult(
  model: LanguageModelV3,
  options: LanguageModelV3CallOptions,
  sink: StreamSink,
  classifiers: StreamClassifiers,
): Promise<StreamedResult> {
  const signal = options.abortSignal ?? new AbortController().signal;
  let stream: ReadableStream<LanguageModelV3StreamPart>;
  try {
    ({ stream } = await model.doStream(options));
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw classifyStreamStartFailure(error, classifiers);
  }
  return readStream(stream, sink, signal, classifiers);
}

/**
 * An error from before a stream's parts (`doStream` itself): an HTTP error, a connection that
 * failed, or an error the SDK raised from the stream's first events.
 */
export function classifyStreamStartFailure(error: unknown, classifiers: StreamClassifiers): ProviderError {
  // The SDK peeks at the first events: a body that broke off there is the same cut as later in
  // the stream (network_error), not an error event.
  if (
    APICallError.isInstance(error) &&
    error.statusCode !== undefined &&
    error.statusCode >= 200 &&
    error.statusCode < 300 &&
    isTransportFailure(error)
  )
    return classifyReadFailure(error, classifiers);
  if (isStreamEventError(error)) {
    const body = parseBody(error);
    return midStream(classifiers.classifyEvent?.(body) ?? classifiers.classify(error));
  }
  return classifiers.classify(error);
}
