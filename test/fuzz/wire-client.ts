/**
 * HTTP requests sent exactly as written: `fetch` (WHATWG URL) resolves dot segments and
 * re-encodes paths, which would hide the very spellings (`/v1/../v1/jobs`, `/%761/jobs`, `//v1`)
 * a fuzzer wants the server to see. node:http sends the request target byte for byte, over
 * keep-alive sockets so a long run does not exhaust ports.
 */
import { Agent, type IncomingHttpHeaders, request } from "node:http";

export interface WireRequest {
  method: string;
  /** The request target as sent, e.g. `/v1/jobs/job_1?wait=0`. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Give up (and reject) after this long; default 20 s. */
  timeoutMs?: number;
}

export interface WireResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body; for an event stream, what arrived within `STREAM_READ_MS` (then the client hangs up). */
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: fuzz assertions read whatever JSON came back.
  json: any;
}

/** How long an event stream is read before the client hangs up (SSE responses stay open). */
export const STREAM_READ_MS = 150;

export interface WireClient {
  send(request: WireRequest): Promise<WireResponse>;
  /** Closes the keep-alive sockets, so the server can close at once. */
  close(): void;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function createWireClient(baseUrl: string): WireClient {
  const target = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const send = (options: WireRequest) =>
    new Promise<WireResponse>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 20_000;
      const outgoing = request({
        host: target.hostname,
        port: target.port,
        method: options.method,
        path: options.path,
        headers: {
          ...options.headers,
          ...(options.body !== undefined
            ? { "content-length": String(Buffer.byteLength(options.body)) }
            : {}),
        },
        agent,
      });
      const timer = setTimeout(() => {
        outgoing.destroy(new Error(`${options.method} ${options.path}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      outgoing.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      outgoing.on("response", (incoming) => {
        const chunks: Buffer[] = [];
        let settled = false;
        const finish = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: incoming.statusCode ?? 0,
            headers: incoming.headers,
            text,
            json: parseJson(text),
          });
        };
        incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
        incoming.on("end", finish);
        // Cut on purpose below (an event stream) or by the server mid-body: what arrived is the answer.
        incoming.on("error", finish);
        if (String(incoming.headers["content-type"] ?? "").startsWith("text/event-stream")) {
          setTimeout(() => {
            finish();
            // The socket goes with it: a half-read stream cannot be reused for keep-alive.
            outgoing.destroy();
          }, STREAM_READ_MS);
        }
      });
      if (options.body !== undefined) outgoing.write(options.body);
      outgoing.end();
    });
  return { send, close: () => agent.destroy() };
}
