import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the server reads its page from: a prom-client Registry satisfies it. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface MetricsServer {
  /** The port it listens on (the one asked for, or the one the system chose for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A worker's own metrics page: GET /metrics on host:port, 404 for anything else. Plain node:http
 * rather than Fastify: a worker has no other HTTP to serve, and Prometheus only ever asks one thing.
 * No auth: it shows counts, never ids or secrets, and is meant for a private address.
 */
export async function startMetricsServer(
  source: MetricsSource,
  options: { host: string; port: number; onError: (error: unknown) => void },
): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (path !== "/metrics" || (request.method !== "GET" && request.method !== "HEAD")) {
      response.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
      return;
    }
    source.metrics().then(
      (page) => {
        response.writeHead(200, { "content-type": source.contentType });
        response.end(request.method === "HEAD" ? undefined : page);
      },
      (error: unknown) => {
        options.onError(error);
        response.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("metrics failed\n");
      },
    );
  });
  // Scrapes are seconds apart: a kept-alive connection must not hold shutdown up.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
