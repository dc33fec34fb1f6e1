import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import {
  APICallError,
  EmptyResponseBodyError,
  type LanguageModelV3CallOptions,
  type SharedV3Warning,
} from "@ai-sdk/provider";
import { createParser, type EventSourceMessage, type EventSourceParser } from "eventsource-parser";
import type { Dispatcher } from "undici";
import type { StreamCall } from "../ai-sdk/adapter.js";
import {
  classifyReadFailure,
  classifyStreamStartFailure,
  StreamAssembler,
  type StreamClassifiers,
  type StreamedResult,
} from "../ai-sdk/from-stream.js";
import { MAX_PROVIDER_RESPONSE_BYTES } from "../http.js";
import { restoreUnsentFields } from "../openai-names.js";
import { ProviderError } from "../provider-error.js";
import { chunkWatcher, holdsData } from "../response-watch.js";
import type { StreamSink } from "../types.js";
import { ChunkMapper, errorFrameOf, isOutputChunk, type ParsedChunk, parseChunk } from "./chat-chunks.js";
import { failedResponseError, transportError } from "./failures.js";
import { bodyText } from "./json-body.js";
import { codingsRefused, decoded, headerRecord, NULL_BODY_STATUSES, TransportFailure } from "./post-json.js";
import type { Json } from "./schema-checks.js";
import { type ChatModelInternals, type LeanTarget, leanTargets } from "./target.js";

/**
 * Streamed chat completions for `openai`-type providers without fetch, web streams or zod: one
 * `dispatch` on the provider's Agent whose body chunks go, as they arrive, through a UTF-8
 * decoder and eventsource-parser (the parser the SDK uses, fed directly instead of through
 * TextDecoderStream and EventSourceParserStream), one JSON parse and a hand-written check per
 * event, the SDK's own chunk-to-part mapping (chat-chunks.ts) and Cascade's StreamAssembler. The
 * request body, the peek at the first events (an error before any output fails the stream's
 * start), the errors and their classification are the SDK path's (ADR 0031).
 */

const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null;

/**
 * The SDK's `parseStreamError` (createOpenAIStreamError) of an error frame read before any output:
 * a Responses API `response.failed` event's error, else the frame as an error object when it has a
 * message and looks like one; undefined otherwise (status 500 and a generic message then).
 */
function streamErrorOf(frame: unknown): { message: string; code: unknown; type: unknown } | undefined {
  if (!isRecord(frame)) return undefined;
  const pick = (value: unknown) =>
    typeof value === "string" || typeof value === "number" ? value : undefined;
  if (frame.type === "response.failed") {
    const error = isRecord(frame.response) ? frame.response.error : undefined;
    return isRecord(error) && typeof error.message === "string"
      ? { message: error.message, code: pick(error.code), type: "response.failed" }
      : undefined;
  }
  const nested = isRecord(frame.error) ? frame.error : undefined;
  const error = nested ?? frame;
  const looksLikeOne =
    nested !== undefined || typeof error.type === "string" || "code" in error || "param" in error;
  return typeof error.message === "string" && looksLikeOne
    ? {
        message: error.message,
        code: pick(error.code),
        type: typeof error.type === "string" ? error.type : undefined,
      }
    : undefined;
}

/** The SDK's `getStatusCode` for a stream's error (createOpenAIStreamError). */
function frameStatus(error: { code: unknown; type: unknown }): number {
  const code = error.code;
  if (typeof code === "number" && Number.isInteger(code) && code >= 400 && code <= 599) return code;
  if (typeof code === "string" && /^\d{3}$/.test(code)) {
    const numeric = Number(code);
    if (numeric >= 400 && numeric <= 599) return numeric;
  }
  const words = [error.code, error.type]
    .filter((value) => typeof value === "string" || typeof value === "number")
    .join(" ")
    .toLowerCase();
  if (["insufficient_quota", "rate_limit"].some((term) => words.includes(term))) return 429;
  if (words.includes("authentication")) return 401;
  if (words.includes("permission")) return 403;
  if (words.includes("not_found")) return 404;
  if (["invalid", "bad_request", "context_length"].some((term) => words.includes(term))) return 400;
  if (words.includes("overload")) return 503;
  if (words.includes("timeout")) return 504;
  return 500;
}

/** How long a body may go on after [DONE] (it should end with it) before the answer stands. */
const DONE_GRACE_MS = 500;

const inflateOptions = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** fetch's "deflate": zlib-wrapped, or raw deflate when the first byte is not a zlib header's. */
class DeflateDecoder extends Transform {
  private inner: zlib.Inflate | zlib.InflateRaw | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.inner) {
      this.inner =
        ((chunk[0] ?? 0) & 0x0f) === 8
          ? zlib.createInflate(inflateOptions)
          : zlib.createInflateRaw(inflateOptions);
      this.inner.on("data", (data: Buffer) => this.push(data));
      this.inner.on("error", (error) => this.destroy(error));
    }
    this.inner.write(chunk, () => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.inner?.destroy();
    callback(error);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.inner) {
      callback();
      return;
    }
    this.inner.once("end", () => callback());
    this.inner.end();
  }
}

const zstdDecoder = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;

/** Streaming decoders of the codings fetch decodes (post-json.ts decodes whole bodies the same way). */
const STREAM_DECODERS: Record<string, () => Transform> = {
  gzip: () => zlib.createGunzip(inflateOptions),
  "x-gzip": () => zlib.createGunzip(inflateOptions),
  deflate: () => new DeflateDecoder(),
  br: () => zlib.createBrotliDecompress({ finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }),
  ...(zstdDecoder ? { zstd: zstdDecoder } : {}),
};

/** The decoders of a Content-Encoding list, last coding first; none when fetch would leave the body as is. */
function streamDecoders(header: string | undefined): Transform[] | undefined {
  if (!header) return undefined;
  const codings = header.toLowerCase().split(",");
  const decoders: Transform[] = [];
  for (let index = codings.length - 1; index >= 0; index -= 1) {
    const coding = (codings[index] as string).trim();
    const make = Object.hasOwn(STREAM_DECODERS, coding) ? STREAM_DECODERS[coding] : undefined;
    if (!make) {
      for (const decoder of decoders) decoder.destroy();
      return undefined;
    }
    decoders.push(make());
  }
  return decoders.length ? decoders : undefined;
}

/**
 * One streamed call: the dispatch handler, the call's abort listener and the reading of its
 * events in one object.
 */
class LeanStream implements Dispatcher.DispatchHandler {
  private settled = false;
  private controller: Dispatcher.DispatchController | undefined;
  private answer: { status: number; statusText: string; headers: Record<string, string> } | undefined;
  /** A failed answer's body, read whole. */
  private errorChunks: Buffer[] | undefined;
  private decoders: Transform[] | undefined;
  private decodedBytes = 0;
  private readonly text = new TextDecoder();
  private readonly parser: EventSourceParser;
  private readonly onChunk: (() => void) | undefined;
  private readonly assembler: StreamAssembler;
  private readonly mapper: ChunkMapper;
  /** Set when [DONE] followed the finish and the body had not ended yet (endAtDone). */
  private doneTimer: NodeJS.Timeout | undefined;
  /** Until the first output chunk: the SDK holds the chunks back to see an early error. */
  private peeking = true;
  private held: ParsedChunk[] = [];

  constructor(
    private readonly signal: AbortSignal,
    private readonly target: LeanTarget,
    private readonly requestJson: string,
    private readonly warnings: SharedV3Warning[],
    sink: StreamSink,
    includeRawChunks: boolean,
    private readonly classifiers: StreamClassifiers,
    private readonly resolve: (result: StreamedResult) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.onChunk = chunkWatcher(signal);
    this.assembler = new StreamAssembler(sink, classifiers);
    this.mapper = new ChunkMapper((part) => this.assembler.push(part), includeRawChunks);
    this.parser = createParser({ onEvent: (event) => this.event(event) });
    signal.addEventListener("abort", this, { once: true });
  }

  /** The signal's abort (an EventListener object). */
  handleEvent(): void {
    if (this.settled) return;
    this.settle();
    this.controller?.abort(this.signal.reason);
    this.reject(this.signal.reason);
  }

  private settle(): void {
    this.settled = true;
    this.signal.removeEventListener("abort", this);
    if (this.doneTimer) clearTimeout(this.doneTimer);
    if (this.decoders) for (const decoder of this.decoders) decoder.destroy();
  }

  /** Ends the call with an error already classified (or classified as a broken read). */
  private fail(error: unknown): void {
    if (this.settled) return;
    this.settle();
    this.controller?.abort(error as Error);
    this.reject(error instanceof ProviderError ? error : classifyReadFailure(error, this.classifiers));
  }

  /**
   * A 2xx body that could not be read to its end (cut, undecodable, decoding past the bound), as
   * the SDK reports it: "Failed to process successful response", a network_error.
   */
  private failBody(error: Error): void {
    const answer = this.answer;
    const failure = new TransportFailure("body", error, answer);
    this.fail(transportError(failure, this.target.url, this.requestBody()));
  }

  /** Ends the call with an error from before its stream (HTTP errors, connections, early error events). */
  private failStart(error: unknown): void {
    if (this.settled) return;
    this.settle();
    this.controller?.abort(error as Error);
    this.reject(classifyStreamStartFailure(error, this.classifiers));
  }

  private requestBody(): unknown {
    return JSON.parse(this.requestJson);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(this.signal.reason);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // 1xx answers are not the response (fetch skips them too).
    if (statusCode < 200 || this.settled) return;
    const record = headerRecord(headers);
    const nullBody = NULL_BODY_STATUSES.has(statusCode);
    const refused = nullBody ? undefined : codingsRefused(record["content-encoding"]);
    if (refused) {
      // As fetch: a failure before the answer (no status to classify), the body left unread.
      this.failStart(
        transportError(new TransportFailure("connect", refused), this.target.url, this.requestBody()),
      );
      controller.abort(refused);
      return;
    }
    this.answer = { status: statusCode, statusText: statusMessage ?? "", headers: record };
    if (statusCode > 299) {
      this.errorChunks = [];
      return;
    }
    if (nullBody) {
      // fetch gives these no body, and the SDK fails reading it (EmptyResponseBodyError).
      const cause = new EmptyResponseBodyError({});
      this.failStart(
        new APICallError({
          message: "Failed to process successful response",
          cause,
          statusCode,
          url: this.target.url,
          responseHeaders: record,
          requestBodyValues: this.requestBody(),
        }),
      );
      return;
    }
    this.decoders = streamDecoders(record["content-encoding"]);
    const decoders = this.decoders;
    if (!decoders) return;
    for (let index = 0; index < decoders.length; index += 1) {
      const decoder = decoders[index] as Transform;
      decoder.on("error", (error: Error) => this.failBody(error));
      const next = decoders[index + 1];
      if (next) decoder.pipe(next);
    }
    const last = decoders.at(-1) as Transform;
    last.on("data", (data: Buffer) => {
      this.decodedBytes += data.length;
      if (this.decodedBytes > MAX_PROVIDER_RESPONSE_BYTES) {
        const coding = record["content-encoding"];
        this.failBody(
          new Error(`the answer decodes to more than ${MAX_PROVIDER_RESPONSE_BYTES} bytes (${coding})`),
        );
        return;
      }
      this.bytes(data);
    });
    last.on("end", () => this.end());
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    if (this.errorChunks) this.errorChunks.push(chunk);
    else if (this.decoders) this.decoders[0]?.write(chunk);
    else this.bytes(chunk);
  }

  onResponseEnd(): void {
    if (this.settled || !this.answer) return;
    if (this.errorChunks) {
      this.failedAnswer(this.answer, this.errorChunks);
      return;
    }
    if (this.decoders) this.decoders[0]?.end();
    else this.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.settled) return;
    const answer = this.answer;
    if (answer && !this.errorChunks) {
      // fetch fails a body cut short with TypeError("terminated"), its cause undici's error.
      this.failBody(new TypeError("terminated", { cause: error }));
      return;
    }
    const failure = new TransportFailure(answer ? "body" : "connect", error, answer);
    this.failStart(transportError(failure, this.target.url, this.requestBody()));
  }

  /** A non-2xx answer: the SDK's failed-response handler's error. */
  private failedAnswer(answer: NonNullable<LeanStream["answer"]>, chunks: Buffer[]): void {
    let body: Buffer;
    const received = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    try {
      body = decoded(received, answer.headers["content-encoding"]);
    } catch (error) {
      const failure = new TransportFailure("body", error as Error, answer);
      this.failStart(transportError(failure, this.target.url, this.requestBody()));
      return;
    }
    const text = bodyText(body);
    this.failStart(failedResponseError({ ...answer, body }, text, this.target.url, this.requestBody()));
  }

  /** Bytes of a 2xx body, decoded: the idle clock, then the events they complete. */
  private bytes(data: Buffer): void {
    if (this.settled) return;
    if (this.onChunk && holdsData(data)) this.onChunk();
    try {
      this.parser.feed(this.text.decode(data, { stream: true }));
    } catch (error) {
      this.fail(error);
    }
  }

  private event(event: EventSourceMessage): void {
    if (this.settled) return;
    if (event.data === "[DONE]") {
      // The answer is whole once the provider finished it and said [DONE]; the body's end should
      // follow at once. A server that keeps the connection open after it gets a moment, then the
      // answer stands (the SDK would wait for the end, and the idle timeout would throw it away).
      if (this.mapper.finished && !this.doneTimer) {
        this.doneTimer = setTimeout(() => this.endAtDone(), DONE_GRACE_MS);
        this.doneTimer.unref();
      }
      return;
    }
    const chunk = parseChunk(event.data);
    if (!this.peeking) {
      this.mapper.chunk(chunk);
      return;
    }
    if (!chunk.success) {
      this.release();
      this.mapper.chunk(chunk);
      return;
    }
    const frame = errorFrameOf(chunk);
    if (frame) {
      // The SDK's createOpenAIStreamError: doStream fails, nothing of the stream was read.
      const streamError = streamErrorOf(frame);
      const error = new APICallError({
        message: streamError?.message ?? "OpenAI stream failed before any output was generated",
        url: this.target.url,
        requestBodyValues: this.requestBody(),
        statusCode: streamError ? frameStatus(streamError) : 500,
        responseHeaders: this.answer?.headers,
        responseBody: JSON.stringify(frame),
        data: frame,
      });
      this.failStart(error);
      return;
    }
    this.held.push(chunk);
    if (isOutputChunk(chunk)) this.release();
  }

  /** The first output chunk (or the end, or a chunk the SDK could not read): the stream starts. */
  private release(): void {
    this.peeking = false;
    this.mapper.start(this.warnings);
    const held = this.held;
    this.held = [];
    for (const chunk of held) this.mapper.chunk(chunk);
  }

  /** The body ended: the SDK's flush, then the answer. */
  private end(): void {
    if (this.settled) return;
    try {
      // EventSourceParserStream has no flush: an event the body did not end is dropped.
      this.parser.feed(this.text.decode());
      this.answerNow();
    } catch (error) {
      this.fail(error);
    }
  }

  /** [DONE] came after the finish, and the body did not end within DONE_GRACE_MS: answer anyway. */
  private endAtDone(): void {
    if (this.settled) return;
    try {
      this.answerNow();
    } catch (error) {
      this.fail(error);
      return;
    }
    // The rest of that body is never read: its connection cannot be used again.
    this.controller?.abort(new Error("the provider kept the connection open after [DONE]"));
  }

  private answerNow(): void {
    if (this.peeking) this.release();
    this.mapper.flush();
    const result = this.assembler.result();
    this.settle();
    this.resolve(result);
  }
}

async function streamLean(
  dispatcher: Dispatcher,
  model: ChatModelInternals,
  target: LeanTarget,
  options: LanguageModelV3CallOptions,
  sink: StreamSink,
  classifiers: StreamClassifiers,
  streamUsage: boolean,
): Promise<StreamedResult> {
  const signal = options.abortSignal ?? new AbortController().signal;
  let prepared: Awaited<ReturnType<ChatModelInternals["getArgs"]>>;
  try {
    prepared = await model.getArgs(options);
  } catch (error) {
    // As doStream's own failure (an option the SDK refuses).
    if (signal.aborted) throw signal.reason;
    throw classifyStreamStartFailure(error, classifiers);
  }
  const { args, warnings } = prepared;
  // As doStream builds it (the key order too); without stream_options for a provider that refuses
  // it (openai.ts, asksStreamUsage).
  const body: Record<string, unknown> = streamUsage
    ? { ...args, stream: true, stream_options: { include_usage: true } }
    : { ...args, stream: true };
  restoreUnsentFields(signal, body);
  const requestJson = JSON.stringify(body);
  if (signal.aborted) throw signal.reason;
  return new Promise<StreamedResult>((resolve, reject) => {
    const call = new LeanStream(
      signal,
      target,
      requestJson,
      warnings,
      sink,
      options.includeRawChunks === true,
      classifiers,
      resolve,
      reject,
    );
    try {
      dispatcher.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: "POST",
          headers: target.headers,
          body: requestJson,
        },
        call,
      );
    } catch (error) {
      call.onResponseError(undefined as never, error as Error);
    }
  });
}

/**
 * Streamed chat completions over `dispatcher` (the provider's Agent), read without the SDK's
 * fetch and web streams; a model the lean client cannot call goes through `sdkStream`. See ADR 0031.
 */
export function createLeanChatStream(
  dispatcher: Dispatcher,
  classifiers: StreamClassifiers,
  sdkStream: StreamCall,
  /** Whether the body asks for `stream_options: {include_usage: true}`, as doStream's does. */
  streamUsage = true,
): StreamCall {
  const targetOf = leanTargets();
  return (model, options, sink) => {
    const target = targetOf(model);
    if (!target) return sdkStream(model, options, sink);
    return streamLean(
      dispatcher,
      model as unknown as ChatModelInternals,
      target,
      options,
      sink,
      classifiers,
      streamUsage,
    );
  };
}
