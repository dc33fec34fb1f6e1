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
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    let answer: Omit<RawAnswer, "body"> | undefined;
    let chunks: Buffer[] = [];
    let firstByte = onFirstByte;
    const finish = () => {
      settled = true;
      signal.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      if (settled) return;
      finish();
      controller?.abort(signal.reason);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const fail = (error: Error) => {
      if (settled) return;
      finish();
      reject(new TransportFailure(answer ? "body" : "connect", error, answer));
    };
    const reportFirstByte = () => {
      if (!firstByte) return;
      const report = firstByte;
      firstByte = undefined;
      report();
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(requestController) {
        controller = requestController;
        if (settled) requestController.abort(signal.reason);
      },
      onResponseStart(_controller, statusCode, responseHeaders, statusMessage) {
        // 1xx answers are not the response (fetch skips them too).
        if (statusCode < 200) return;
        answer = {
          status: statusCode,
          statusText: statusMessage ?? "",
          headers: headerRecord(responseHeaders),
        };
      },
      onResponseData(_controller, chunk) {
        reportFirstByte();
        if (!settled) chunks.push(chunk);
      },
      onResponseEnd() {
        reportFirstByte();
        if (settled || !answer) return;
        let raw: Buffer;
        try {
          const joined = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
          raw = decoded(joined, answer.headers["content-encoding"]);
        } catch (error) {
          fail(error as Error);
          return;
        }
        chunks = [];
        finish();
        resolve({ ...answer, body: raw });
      },
      onResponseError(_controller, error) {
        fail(error);
      },
    };
    try {
      dispatcher.dispatch(
        { origin: target.origin, path: target.path, method: "POST", headers, body },
        handler,
      );
    } catch (error) {
      fail(error as Error);
    }
  });
}
