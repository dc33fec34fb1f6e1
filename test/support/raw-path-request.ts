import { request as httpRequest } from "node:http";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * One HTTP request with the path sent exactly as given: no URL parser in between, so
 * percent-encodings, dot segments and doubled slashes reach the server as a client typed them
 * (fetch would normalise `/v1/../v1/jobs` and `//v1` before sending). The response body is read
 * for at most `timeoutMs`; an SSE stream that stays open is cut there and returned as read.
 */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const request = httpRequest(
      { host: hostname, port, method, path, headers: options.headers, agent: false },
      (response) => {
        const finish = () => {
          clearTimeout(timer);
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          });
        };
        const timer = setTimeout(() => {
          response.destroy();
          finish();
        }, options.timeoutMs ?? 2_000);
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", finish);
        response.on("error", finish);
      },
    );
    request.on("error", reject);
    if (options.body !== undefined) request.write(options.body);
    request.end();
  });
}
