import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import type { Dispatcher } from "undici";

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

function headerRecord(headers: Record<string, string | string[] | undefined>): Record<string, string> {
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

/** Undoes a content coding the server applied although it was not asked for (fetch would). */
function decoded(body: Buffer, coding: string | undefined): Buffer {
  switch (coding?.trim().toLowerCase()) {
    case undefined:
    case "":
    case "identity":
      return body;
    case "gzip":
    case "x-gzip":
      return gunzipSync(body);
    case "deflate":
      return inflateSync(body);
    case "br":
      return brotliDecompressSync(body);
    default:
      return body;
  }
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
    if (this.settled) controller.abort(this.signal.reason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // 1xx answers are not the response (fetch skips them too).
    if (statusCode < 200) return;
    this.answer = { status: statusCode, statusText: statusMessage ?? "", headers: headerRecord(headers) };
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
      body = decoded(
        chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks),
        answer.headers["content-encoding"],
      );
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
 * `onFirstByte` runs when the first byte of the body arrives (or the body ends empty).
 */
export function postJson(
  dispatcher: Dispatcher,
  target: PostTarget,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
  onFirstByte?: () => void,
): Promise<RawAnswer> {
  return new Promise<RawAnswer>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const collector = new AnswerCollector(signal, onFirstByte, resolve, reject);
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
