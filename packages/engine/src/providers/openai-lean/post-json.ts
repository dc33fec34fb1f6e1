import * as zlib from "node:zlib";
import type { Dispatcher } from "undici";
import { MAX_PROVIDER_RESPONSE_BYTES } from "../http.js";
import type { SentSink } from "../types.js";

/** An HTTP answer read whole: what the lean client classifies. */
export interface RawAnswer {
  status: number;
  /** The reason phrase (fetch's `statusText`; the AI SDK's message for an unreadable error body). */
  statusText: string;
  /** Lower-case names; repeated headers joined with ", " (set-cookie: the last), as fetch's Headers. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * A call that failed without an answer to classify: `connect` before the response headers (what
 * fetch reports as "fetch failed"), `body` while reading the body after them.
 */
export class TransportFailure extends Error {
  constructor(
    readonly phase: "connect" | "body",
    readonly error: Error,
    readonly answer?: Omit<RawAnswer, "body">,
  ) {
    super(error.message, { cause: error });
    this.name = "TransportFailure";
  }
}

export interface PostTarget {
  origin: string;
  /** Path and query, as fetch would send them for the same URL. */
  path: string;
}

export function headerRecord(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const record: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") record[name] = value;
    // fetch's Headers iterates set-cookie values one by one (Object.fromEntries keeps the last).
    else record[name] = name === "set-cookie" ? (value.at(-1) ?? "") : value.join(", ");
  }
  return record;
}

/** What fetch accepts at most in one Content-Encoding list (undici: resource exhaustion). */
const MAX_CONTENT_CODINGS = 5;

const gunzip = (body: Buffer) =>
  zlib.gunzipSync(body, {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
    maxOutputLength: MAX_PROVIDER_RESPONSE_BYTES,
  });

/** zlib's zstd (Node 22.15+), which fetch decodes where Node has it; not in Node 20's types. */
const zstdDecompressSync = (
  zlib as unknown as {
    zstdDecompressSync?: (body: Buffer, options: { maxOutputLength: number }) => Buffer;
  }
).zstdDecompressSync;

/**
 * Lenient with a body cut short at the end, as fetch's decoders are (and curl's). "deflate" as
 * fetch reads it: zlib-wrapped, or raw deflate when the first byte is not a zlib header's.
 */
const DECODERS: Record<string, (body: Buffer) => Buffer> = {
  gzip: gunzip,
  "x-gzip": gunzip,
  deflate: (body) =>
    ((body[0] ?? 0) & 0x0f) === 8 || body.length === 0
      ? zlib.inflateSync(body, {
          finishFlush: zlib.constants.Z_SYNC_FLUSH,
          maxOutputLength: MAX_PROVIDER_RESPONSE_BYTES,
        })
      : zlib.inflateRawSync(body, {
          finishFlush: zlib.constants.Z_SYNC_FLUSH,
          maxOutputLength: MAX_PROVIDER_RESPONSE_BYTES,
        }),
  br: (body) =>
    zlib.brotliDecompressSync(body, {
      finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
      maxOutputLength: MAX_PROVIDER_RESPONSE_BYTES,
    }),
  ...(zstdDecompressSync
    ? { zstd: (body: Buffer) => zstdDecompressSync(body, { maxOutputLength: MAX_PROVIDER_RESPONSE_BYTES }) }
    : {}),
};

/** Statuses whose answer has no body: fetch neither counts nor decodes their codings. */
export const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** fetch's refusal of a Content-Encoding list longer than five, when the headers arrive. */
export function codingsRefused(header: string | undefined): Error | undefined {
  const count = header ? header.split(",").length : 0;
  return count > MAX_CONTENT_CODINGS
    ? new Error(`too many content-encodings in response: ${count}, maximum allowed is ${MAX_CONTENT_CODINGS}`)
    : undefined;
}

/**
 * Undoes the content codings the server applied although none was asked for, as fetch does: the
 * list's codings in reverse order; a coding fetch does not decode anywhere in it (identity, zstd
 * on a Node without it, an empty item) leaves the whole body as received. Decoded past
 * MAX_PROVIDER_RESPONSE_BYTES is an error (RangeError). More than five codings was refused with
 * the headers (codingsRefused).
 */
export function decoded(body: Buffer, header: string | undefined): Buffer {
  if (!header) return body;
  const codings = header.toLowerCase().split(",");
  const decoders: Array<(body: Buffer) => Buffer> = [];
  for (let index = codings.length - 1; index >= 0; index -= 1) {
    const coding = (codings[index] as string).trim();
    const decoder = Object.hasOwn(DECODERS, coding) ? DECODERS[coding] : undefined;
    if (!decoder) return body;
    decoders.push(decoder);
  }
  let out = body;
  for (const decoder of decoders) out = decoder(out);
  return out;
}

/**
 * Collects one answer: a dispatch handler and the call's abort listener in one object (no closure
 * per event), so a call in flight holds little more than its chunks.
 */
class AnswerCollector implements Dispatcher.DispatchHandler {
  private settled = false;
  private controller: Dispatcher.DispatchController | undefined;
  private answer: Omit<RawAnswer, "body"> | undefined;
  private chunks: Buffer[] = [];

  constructor(
    private readonly signal: AbortSignal,
    private firstByte: (() => void) | undefined,
    private readonly resolve: (answer: RawAnswer) => void,
    private readonly reject: (error: unknown) => void,
    private readonly sentTo: SentSink | undefined,
  ) {
    signal.addEventListener("abort", this, { once: true });
  }

  /** The signal's abort (an EventListener object). */
  handleEvent(): void {
    if (this.settled) return;
    this.finish();
    this.controller?.abort(this.signal.reason);
    this.reject(this.signal.reason);
  }

  private finish(): void {
    this.settled = true;
    this.signal.removeEventListener("abort", this);
  }

  fail(error: Error): void {
    if (this.settled) return;
    this.finish();
    this.reject(new TransportFailure(this.answer ? "body" : "connect", error, this.answer));
  }

  private reportFirstByte(): void {
    const report = this.firstByte;
    if (!report) return;
    this.firstByte = undefined;
    report();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) {
      controller.abort(this.signal.reason);
      return;
    }
    // undici calls this on the socket the request is written to, right before the write.
    this.sentTo?.sent();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // 1xx answers are not the response (fetch skips them too).
    if (statusCode < 200) return;
    const record = headerRecord(headers);
    const refused = NULL_BODY_STATUSES.has(statusCode)
      ? undefined
      : codingsRefused(record["content-encoding"]);
    if (refused) {
      // As fetch: a failure before the answer (no status to classify), the body left unread.
      this.fail(refused);
      controller.abort(refused);
      return;
    }
    this.answer = { status: statusCode, statusText: statusMessage ?? "", headers: record };
    if (statusCode < 300) this.sentTo?.responded?.();
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.reportFirstByte();
    if (!this.settled) this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.reportFirstByte();
    const answer = this.answer;
    if (this.settled || !answer) return;
    const { chunks } = this;
    let body: Buffer;
    try {
      const received = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      body = NULL_BODY_STATUSES.has(answer.status)
        ? received
        : decoded(received, answer.headers["content-encoding"]);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    this.chunks = [];
    this.finish();
    this.resolve({ ...answer, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.fail(error);
  }
}

/**
 * One POST on a provider's dispatcher, the answer collected into one Buffer: no fetch Request,
 * Headers or web streams, no Readable per call. Rejects with the signal's reason when it aborts
 * (at once, even while the request waits for a connection), else with a TransportFailure.
 * `onFirstByte` runs when the first byte of the body arrives (or the body ends empty); `sentTo`
 * is told when the request is written on a socket (not while it waits for one).
 */
export function postJson(
  dispatcher: Dispatcher,
  target: PostTarget,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
  onFirstByte?: () => void,
  sentTo?: SentSink,
): Promise<RawAnswer> {
  return new Promise<RawAnswer>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const collector = new AnswerCollector(signal, onFirstByte, resolve, reject, sentTo);
    try {
      dispatcher.dispatch(
        { origin: target.origin, path: target.path, method: "POST", headers, body },
        collector,
      );
    } catch (error) {
      collector.fail(error as Error);
    }
  });
}
