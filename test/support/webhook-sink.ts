import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the sink received. */
export interface SinkRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  receivedAt: number;
}

/** How the sink answers one request: a status, or a status after a delay, a hang, a redirect. */
export type SinkResponse =
  | number
  | { status?: number; delayMs?: number; hang?: boolean; redirectTo?: string; body?: string };

export interface WebhookSink {
  /** `http://127.0.0.1:PORT/hook` */
  url: string;
  port: number;
  requests: SinkRequest[];
  /** TCP connections accepted, whether or not a request followed (the SSRF canary count). */
  readonly connections: number;
  /** Scripts the next answers, in order; after them the default answer applies. */
  respondWith(...responses: SinkResponse[]): void;
  setDefault(response: SinkResponse): void;
  /** Resolves once `count` requests have arrived (rejects after `timeoutMs`). */
  waitForRequests(count: number, timeoutMs?: number): Promise<SinkRequest[]>;
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1 for tests: records every request and answers as scripted.
 * Only loopback is ever listened on or called.
 */
export async function startWebhookSink(options: { default?: SinkResponse } = {}): Promise<WebhookSink> {
  const requests: SinkRequest[] = [];
  const script: SinkResponse[] = [];
  let fallback: SinkResponse = options.default ?? 200;
  let connections = 0;
  const waiters: Array<() => void> = [];

  const answer = (response: SinkResponse, reply: ServerResponse) => {
    const spec = typeof response === "number" ? { status: response } : response;
    if (spec.hang) return; // never answer; the client must time out
    const send = () => {
      if (spec.redirectTo) reply.setHeader("location", spec.redirectTo);
      reply.writeHead(spec.status ?? (spec.redirectTo ? 302 : 200), { "content-type": "text/plain" });
      reply.end(spec.body ?? "");
    };
    if (spec.delayMs) setTimeout(send, spec.delayMs);
    else send();
  };

  const server = createServer((request: IncomingMessage, reply: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
      }
      requests.push({
        method: request.method ?? "",
        path: request.url ?? "",
        headers,
        body: Buffer.concat(chunks).toString("utf8"),
        receivedAt: Date.now(),
      });
      for (const wake of waiters.splice(0)) wake();
      answer(script.shift() ?? fallback, reply);
    });
  });
  server.on("connection", () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    get connections() {
      return connections;
    },
    respondWith(...responses) {
      script.push(...responses);
    },
    setDefault(response) {
      fallback = response;
    },
    async waitForRequests(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`webhook sink: expected ${count} requests, got ${requests.length}`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return requests.slice(0, count);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
