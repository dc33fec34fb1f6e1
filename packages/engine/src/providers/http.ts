import { Agent, DecoratorHandler, type Dispatcher, Response, fetch as undiciFetch } from "undici";
import type { SentSink } from "./types.js";

/**
 * The most bytes one provider answer may have, on the wire (the provider Agent's
 * `maxResponseSize`: the body bytes read, for every HTTP/1.1 call on it, streamed or not) and, in
 * the lean OpenAI client, decoded: far past any completion (128k tokens of text are ~0.5 MiB; a
 * stream's SSE framing ~10× that), small enough that one answer from an endpoint gone wrong cannot
 * take a worker's memory. Decoded bytes are held to it too, so a compression bomb is refused: by
 * the lean client's zlib bound, and on the fetch path by counting what fetch's decoder hands on.
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
 * undici's DecoratorHandler, which takes a handler of either style (fetch's is the older one) and
 * answers in the newer; its types leave out the newer methods it has.
 */
const Decorator = DecoratorHandler as unknown as new (
  handler: Dispatcher.DispatchHandler,
) => Dispatcher.DispatchHandler & {
  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void;
};

/**
 * A fetch's handler that tells its call when undici writes the request (see reportSent), and when
 * a 2xx answer to it begins.
 */
class SentReporter extends Decorator {
  constructor(
    handler: Dispatcher.DispatchHandler,
    private readonly sink: SentSink,
  ) {
    super(handler);
  }

  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    // undici calls this on the socket the request is written to, right before the write.
    this.sink.sent();
    super.onRequestStart(controller, context);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (statusCode >= 200 && statusCode < 300) this.sink.responded?.();
    super.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }
}

/**
 * The header a call's request carries to the provider dispatcher's interceptor (reportSent), which
 * takes it off: it names the call's sent callback in `sendingCalls`.
 */
export const SENT_HEADER = "x-cascade-sent-id";
const sendingCalls = new Map<string, SentSink>();
let lastSendingId = 0;

/**
 * Headers for an SDK call (its call options' `headers`) whose sent callback must run once undici
 * writes its request; `release` forgets the callback once the call has ended.
 */
export function reportingSent(sink: SentSink): { headers: Record<string, string>; release(): void } {
  lastSendingId = (lastSendingId + 1) % Number.MAX_SAFE_INTEGER;
  const id = String(lastSendingId);
  sendingCalls.set(id, sink);
  return { headers: { [SENT_HEADER]: id }, release: () => sendingCalls.delete(id) };
}

/**
 * fetch gives no hook for its request going out, and a call that times out while its request
 * waits for one of the provider's connections reached no provider (ADR 0013). The call's request
 * names its sent callback in a header (reportingSent), taken off here and called from undici's
 * onRequestStart. Only the SDK types' non-streamed calls carry it.
 */
const reportSent: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) => {
  const headers = options.headers as Record<string, string> | null | undefined;
  const id = headers?.[SENT_HEADER];
  if (!headers || id === undefined) return dispatch(options, handler);
  const { [SENT_HEADER]: _, ...rest } = headers;
  const sent = sendingCalls.get(id);
  return dispatch({ ...options, headers: rest }, sent ? new SentReporter(handler, sent) : handler);
};

/**
 * The fetch every AI SDK provider client uses: undici's, on a provider's Agent (Node's global
 * fetch was measured ~4× slower than a tuned client here). Redirects are not followed: an
 * upstream redirect is a misconfigured base_url, surfaced as an error. A content-coded answer's
 * decoded body is held to MAX_PROVIDER_RESPONSE_BYTES (capDecodedBody).
 */
export function createProviderFetch(
  options: { connections?: number; dispatcher?: Dispatcher } = {},
): typeof globalThis.fetch {
  // The same Agent (its pool), telling each call when its request is written (reportSent).
  const dispatcher = (options.dispatcher ?? createProviderAgent(options)).compose(reportSent);
  const providerFetch = (
    input: Parameters<typeof undiciFetch>[0],
    init?: Parameters<typeof undiciFetch>[1],
  ) => undiciFetch(input, { ...init, dispatcher, redirect: "manual" }).then(capDecodedBody);
  return providerFetch as unknown as typeof globalThis.fetch;
}

/**
 * fetch inflates a content-coded body without a bound (the Agent's maxResponseSize counts the
 * bytes on the wire: a gzip bomb of 80 KB inflates to 80 MiB and more). Past
 * MAX_PROVIDER_RESPONSE_BYTES decoded, the body errors, as a body cut off would: a plain call
 * fails as `invalid_response`, a stream as `network_error`, and reading stops there. A body
 * without a coding is returned as it came (its wire bytes are its bytes).
 */
function capDecodedBody(response: Response): Response {
  const coding = response.headers.get("content-encoding");
  if (response.body === null || coding === null || /^\s*(identity)?\s*$/i.test(coding)) return response;
  // A Response cannot be built with a status outside 200–599 (fetch passes 600–999 through).
  if (response.status < 200 || response.status > 599) return response;
  let decoded = 0;
  const counted = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        decoded += chunk.byteLength;
        if (decoded > MAX_PROVIDER_RESPONSE_BYTES) {
          controller.error(
            new Error(`the answer decodes to more than ${MAX_PROVIDER_RESPONSE_BYTES} bytes (${coding})`),
          );
        } else {
          controller.enqueue(chunk);
        }
      },
    }),
  );
  const capped = new Response(counted, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  // The SDKs read the answer's url (error messages); a constructed Response has none.
  Object.defineProperty(capped, "url", { value: response.url });
  return capped;
}

/** A provider's Agent and a fetch over it. */
export function createProviderHttp(options: { connections?: number } = {}): ProviderHttp {
  const dispatcher = createProviderAgent(options);
  return { dispatcher, fetch: createProviderFetch({ dispatcher }) };
}
