/** A minimal client for Cascade's HTTP API: JSON in and out, the contract's error shape. */

export const DEFAULT_URL = "http://127.0.0.1:3000";

/** The API answered with an error (`{"error": {"type", "message", "param"}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** Worth retrying the same request: the server or a proxy is busy, not the request wrong. */
  get retryable(): boolean {
    return this.status === 408 || this.status === 409 || this.status === 429 || this.status >= 500;
  }
}

/** No HTTP answer at all (refused, reset, DNS). */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkError";
  }
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface ApiResponse<Body> {
  status: number;
  headers: Headers;
  body: Body;
}

function retryAfterMs(headers: Headers): number | undefined {
  const value = headers.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

function describeNetworkError(url: string, error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (error as Error).message;
  return `cannot reach ${url}: ${detail}`;
}

export class ApiClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly apiKey?: string,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      accept: "application/json",
      "user-agent": "cascade-cli",
      ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
      ...extra,
    };
  }

  /** Sends a request; resolves with the parsed JSON of a 2xx answer, else throws ApiError or NetworkError. */
  async request<Body>(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<ApiResponse<Body>> {
    const response = await this.raw(method, path, options);
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {}
    if (!response.ok) throw errorFrom(response, body);
    return { status: response.status, headers: response.headers, body: body as Body };
  }

  /** The fetch Response itself (for streams); throws NetworkError when there is no answer. */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers = this.headers(options.headers);
    if (options.body !== undefined) headers["content-type"] = "application/json";
    try {
      return await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (isAbortError(error)) throw error;
      throw new NetworkError(describeNetworkError(this.baseUrl, error));
    }
  }
}

/** The ApiError for a non-2xx response whose body has been read. */
export function errorFrom(response: Response, body: unknown): ApiError {
  const error = (body as { error?: { type?: unknown; message?: unknown; param?: unknown } } | null)?.error;
  const type = typeof error?.type === "string" ? error.type : `http_${response.status}`;
  const message =
    typeof error?.message === "string"
      ? error.message
      : typeof body === "string" && body.trim()
        ? body.trim().slice(0, 300)
        : `${response.status} ${response.statusText}`;
  const param = typeof error?.param === "string" ? error.param : undefined;
  return new ApiError(response.status, type, message, param, retryAfterMs(response.headers));
}

/** Resolves after `milliseconds`, or rejects with an AbortError when `signal` aborts first. */
export function sleep(milliseconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, milliseconds);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with full jitter, at least `floorMs` (a Retry-After). */
export function backoffMs(attempt: number, floorMs = 0, baseMs = 500, capMs = 10_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.max(floorMs, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
}
