/**
 * Building blocks for fake LLM upstreams (OpenAI today; Anthropic and Gemini can reuse them):
 * a node:http server on 127.0.0.1 that tracks every socket so `close()` never waits on a hanging
 * request, per-request abort signals, JSON and Server-Sent-Events responders, and per-key
 * behaviour scripts. Nothing here knows a provider's wire format.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** One request as the provider-specific handler sees it. */
export interface FakeRequestContext {
  request: IncomingMessage;
  response: ServerResponse;
  method: string;
  /** Path without the query string. */
  path: string;
  /** The whole request body as text (fakes answer after reading it, as real servers do). */
  rawBody: string;
  /** Date.now() when the request arrived. */
  receivedAt: number;
  /** Stable id of the TCP connection: equal ids across requests prove keep-alive reuse. */
  connectionId: number;
  /** Aborted when the client goes away or the fake is closed: stop writing, stop waiting. */
  signal: AbortSignal;
}

export interface FakeHttpServer {
  port: number;
  /** Base origin, e.g. http://127.0.0.1:41234 */
  origin: string;
  close(): Promise<void>;
}

/** Starts a fake upstream on 127.0.0.1 (a free port unless one is given). */
export async function startFakeHttpServer(
  handle: (context: FakeRequestContext) => Promise<void>,
  options: { port?: number } = {},
): Promise<FakeHttpServer> {
  const sockets = new Map<Socket, number>();
  const lifetime = new AbortController();
  let nextConnectionId = 1;
  const server = createServer();
  server.on("connection", (socket) => {
    sockets.set(socket, nextConnectionId++);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("request", (request, response) => {
    const receivedAt = Date.now();
    const requestController = new AbortController();
    response.on("close", () => requestController.abort());
    const signal = AbortSignal.any([lifetime.signal, requestController.signal]);
    readBody(request)
      .then((rawBody) =>
        handle({
          request,
          response,
          method: request.method ?? "GET",
          path: (request.url ?? "/").split("?")[0] ?? "/",
          rawBody,
          receivedAt,
          connectionId: sockets.get(request.socket) ?? 0,
          signal,
        }),
      )
      .catch((error: unknown) => {
        if (signal.aborted) return;
        if (response.headersSent) response.destroy();
        else sendText(response, 500, `fake upstream crashed: ${String(error)}`);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        lifetime.abort();
        server.close(() => resolve());
        for (const socket of sockets.keys()) socket.destroy();
      });
      return closing;
    },
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The parsed JSON value, or undefined when `text` is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** True while the response can still be written to. */
export function isWritable(response: ServerResponse): boolean {
  return !response.destroyed && !response.writableEnded;
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendText(response, status, JSON.stringify(body), { "content-type": "application/json", ...headers });
}

export function sendText(
  response: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  if (!isWritable(response)) return;
  response.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    ...headers,
    "content-length": String(Buffer.byteLength(text)),
  });
  response.end(text);
}

/** A Server-Sent-Events response; every write resolves once the bytes are handed to the socket. */
export interface EventStreamWriter {
  /** Writes `event: <name>` (when given) and `data: <payload>`; objects are JSON-encoded. */
  send(payload: unknown, event?: string): Promise<void>;
  /** Writes text verbatim, for formats with their own framing. */
  raw(text: string): Promise<void>;
  end(): void;
}

export function openEventStream(
  response: ServerResponse,
  headers: Record<string, string> = {},
): EventStreamWriter {
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    ...headers,
  });
  response.flushHeaders();
  const raw = (text: string) =>
    new Promise<void>((resolve) => {
      if (!isWritable(response)) return resolve();
      response.write(text, () => resolve());
    });
  return {
    raw,
    send(payload, event) {
      const data = typeof payload === "string" ? payload : JSON.stringify(payload);
      return raw(`${event === undefined ? "" : `event: ${event}\n`}data: ${data}\n\n`);
    },
    end() {
      if (isWritable(response)) response.end();
    },
  };
}

/** Waits `ms`; resolves false early if the signal aborts (client gone or fake closed). */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Accepts the request and never answers, until the client aborts or the fake closes. */
export function hang(signal: AbortSignal): Promise<void> {
  return sleep(2 ** 31 - 1, signal).then(() => undefined);
}

/** Drops the connection with a TCP RST, as a crashed upstream or a proxy would. */
export function resetConnection(context: FakeRequestContext): void {
  context.request.socket.resetAndDestroy();
}

/** Closes the connection mid-response (FIN after partial bytes): the client sees a truncated body. */
export function cutConnection(context: FakeRequestContext): void {
  context.request.socket.destroy();
}

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** Random id like the providers' own: `prefix` + `length` alphanumerics (or hex). */
export function randomId(
  prefix: string,
  length: number,
  alphabet: "alphanumeric" | "hex" = "alphanumeric",
): string {
  if (alphabet === "hex")
    return (
      prefix +
      randomBytes(Math.ceil(length / 2))
        .toString("hex")
        .slice(0, length)
    );
  const bytes = randomBytes(length);
  let id = prefix;
  for (const byte of bytes) id += ALPHANUMERIC[byte % ALPHANUMERIC.length];
  return id;
}

/**
 * Per-key behaviour queues (key = model): `script` queues behaviours consumed one per call; an
 * empty queue falls back to the key's default, then to the global default (key "*").
 */
export class BehaviourScript<Behaviour> {
  private readonly queues = new Map<string, Behaviour[]>();
  private readonly defaults = new Map<string, Behaviour>();

  constructor(private readonly globalDefault: Behaviour) {}

  script(key: string, behaviours: Behaviour[]): void {
    const queue = this.queues.get(key) ?? [];
    queue.push(...behaviours);
    this.queues.set(key, queue);
  }

  setDefault(key: string, behaviour: Behaviour): void {
    this.defaults.set(key, behaviour);
  }

  next(key: string): Behaviour {
    return (
      this.queues.get(key)?.shift() ?? this.defaults.get(key) ?? this.defaults.get("*") ?? this.globalDefault
    );
  }

  reset(): void {
    this.queues.clear();
    this.defaults.clear();
  }
}

/** Sends headers promising the whole `text`, then half of it, then closes: a body cut mid-flight. */
export function sendTruncated(
  context: FakeRequestContext,
  status: number,
  text: string,
  headers: Record<string, string>,
): void {
  if (!isWritable(context.response)) return;
  const bytes = Buffer.from(text);
  context.response.writeHead(status, { ...headers, "content-length": String(bytes.length) });
  context.response.write(bytes.subarray(0, bytes.length >> 1), () => cutConnection(context));
}

/** Token-sized pieces (up to 6 visible characters with their leading whitespace) that join back to `text`. */
export function splitText(text: string): string[] {
  return text.match(/\s*\S{1,6}|\s+/g) ?? [];
}

/** Go-style durations as OpenAI's headers and messages use them: "120ms", "1.5s", "6m0s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(3))}s`;
  return `${Math.floor(ms / 60_000)}m${Number(((ms % 60_000) / 1000).toFixed(3))}s`;
}

/** A secret as providers echo it in error messages: first 3 and last 4 characters kept. */
export function maskSecret(secret: string): string {
  if (secret.length <= 8) return "*".repeat(secret.length);
  return `${secret.slice(0, 3)}${"*".repeat(secret.length - 7)}${secret.slice(-4)}`;
}

/** The text of a string, or of the `{type: "text"}` parts of a content array (OpenAI and Anthropic). */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((part) => part?.type === "text" && typeof part.text === "string")
    .map((part) => part.text)
    .join(" ");
}

/** `Echo: <last user message text>` (first 200 characters): deterministic, and shows what was sent. */
export function echoLastUser(messages: unknown): string {
  const list = Array.isArray(messages) ? messages : [];
  const lastUser = [...list].reverse().find((message) => message?.role === "user");
  return `Echo: ${contentText(lastUser?.content).slice(0, 200)}`;
}
