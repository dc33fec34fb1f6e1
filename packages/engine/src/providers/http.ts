import { Agent, type Dispatcher, fetch as undiciFetch } from "undici";

/**
 * The most bytes one provider answer may have, on the wire (the provider Agent's
 * `maxResponseSize`: the body bytes read, for every HTTP/1.1 call on it, streamed or not) and, in
 * the lean OpenAI client, decoded: far past any completion (128k tokens of text are ~0.5 MiB; a
 * stream's SSE framing ~10× that), small enough that one answer from an endpoint gone wrong cannot
 * take a worker's memory (the lean client refuses a compression bomb; fetch's own decoder has no
 * such bound).
 */
export const MAX_PROVIDER_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * Upstream connections per provider when the process does not say (the API, whose gateway calls
 * are as many as its callers make). Workers size each provider's pool to `WORKER_CONCURRENCY`
 * instead: with HTTP/1.1 every call in flight holds a connection, so fewer connections than job
 * slots caps a worker at connections / latency calls per second (ADR 0022).
 */
export const DEFAULT_PROVIDER_CONNECTIONS = 512;

/**
 * The HTTP client of one provider (or of a pooled deployment with its own key or endpoint): an
 * undici Agent with keep-alive and at most `connections` sockets per origin, and a fetch over
 * it for the AI SDK clients. The lean OpenAI client dispatches on the same Agent, so streamed
 * and plain calls share the provider's connections.
 */
export interface ProviderHttp {
  readonly dispatcher: Dispatcher;
  readonly fetch: typeof globalThis.fetch;
}

export function createProviderAgent(options: { connections?: number } = {}): Agent {
  return new Agent({
    connections: options.connections ?? DEFAULT_PROVIDER_CONNECTIONS,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    // Per-hop timeouts are enforced by AbortSignal; these only stop a dead socket lingering.
    headersTimeout: 0,
    bodyTimeout: 0,
    // An answer whose body bytes run past this fails the call, as a broken connection would: the
    // chain moves on rather than the process buffering without end. (undici checks the bytes read,
    // not a Content-Length, and only on HTTP/1.1, which is all these Agents speak.)
    maxResponseSize: MAX_PROVIDER_RESPONSE_BYTES,
  });
}

/**
 * The fetch every AI SDK provider client uses: undici's, on a provider's Agent (Node's global
 * fetch was measured ~4× slower than a tuned client here). Redirects are not followed: an
 * upstream redirect is a misconfigured base_url, surfaced as an error.
 */
export function createProviderFetch(
  options: { connections?: number; dispatcher?: Dispatcher } = {},
): typeof globalThis.fetch {
  const dispatcher = options.dispatcher ?? createProviderAgent(options);
  const providerFetch = (
    input: Parameters<typeof undiciFetch>[0],
    init?: Parameters<typeof undiciFetch>[1],
  ) => undiciFetch(input, { ...init, dispatcher, redirect: "manual" });
  return providerFetch as unknown as typeof globalThis.fetch;
}

/** A provider's Agent and a fetch over it. */
export function createProviderHttp(options: { connections?: number } = {}): ProviderHttp {
  const dispatcher = createProviderAgent(options);
  return { dispatcher, fetch: createProviderFetch({ dispatcher }) };
}
