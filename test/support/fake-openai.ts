/**
 * A fake of OpenAI's Chat Completions API over real HTTP, for integration and end-to-end tests:
 * scripted per model, with OpenAI's own response objects, SSE chunks, headers and error bodies.
 * Wire format: https://platform.openai.com/docs/api-reference/chat/create and
 * https://platform.openai.com/docs/guides/error-codes (bodies checked against captured responses).
 */
import {
  BehaviourScript,
  contentText,
  cutConnection,
  echoLastUser,
  type FakeRequestContext,
  formatDuration,
  hang,
  isWritable,
  maskSecret,
  openEventStream,
  parseJson,
  randomId,
  resetConnection,
  sendJson,
  sendText,
  sendTruncated,
  sleep,
  splitText,
  startFakeHttpServer,
} from "./fake-upstream-common.js";

export type FakeToolCall = { id?: string; name: string; arguments: string };
export type FakeUsage = {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens?: number;
  reasoning_tokens?: number;
};

/** What the fake does for one call. */
export type FakeBehaviour =
  | {
      kind: "ok";
      /** Defaults to `Echo: <last user message>` (null when only tool calls or a refusal are given). */
      content?: string;
      /** The model declines (structured outputs' `message.refusal`; streamed as `delta.refusal`). */
      refusal?: string;
      toolCalls?: FakeToolCall[];
      finishReason?: "stop" | "length" | "tool_calls" | "content_filter";
      usage?: FakeUsage;
      /** Wait before answering (before the response headers). */
      delayMs?: number;
      /** stream:true only: wait between SSE chunks. */
      chunkDelayMs?: number;
      /**
       * With logprobs asked for: the log probabilities of `tokens` that have no text in the answer
       * (a stop token's, say), after the content's. Streamed,
       * they come after the last text in a chunk without text of its own: `delta: {}`
       * (`empty_delta`), `delta: {content: ""}` (`empty_content`), or the finish chunk (`finish`).
       * Not streamed, they end `logprobs.content`, which holds every token's.
       */
      trailingLogprobs?: { tokens: string[]; carrier: "empty_delta" | "empty_content" | "finish" };
    }
  | {
      kind: "status";
      status: number;
      body?: unknown;
      headers?: Record<string, string>;
      delayMs?: number;
      /** Appends the request's messages to the error's message, as vLLM's and LiteLLM's validation errors quote their input. */
      echoMessages?: boolean;
    }
  | { kind: "rate_limited"; retryAfterSeconds?: number; retryAfterMs?: number }
  | { kind: "server_error"; status?: number }
  | { kind: "context_length" }
  | { kind: "hang" }
  | { kind: "malformed" }
  | { kind: "reset" }
  /**
   * Sends `afterChunks` chunks (the first is the role chunk; then the content's, the finish
   * chunk, and the usage chunk when asked for), then cuts the connection, before `data: [DONE]`
   * however many were sent. `usage` as for `ok` (the usage chunk's counts).
   */
  | { kind: "stream_cut"; afterChunks: number; content?: string; usage?: FakeUsage }
  /**
   * stream:true: sends `afterChunks` SSE chunks (counted as for stream_cut: the first is the role
   * chunk), then nothing more, the connection left open until the client aborts or the fake
   * closes. Not streamed: the headers and half of the body, then the same silence.
   * `chunkDelayMs` and `usage` as for `ok`.
   */
  | { kind: "stall"; afterChunks: number; content?: string; chunkDelayMs?: number; usage?: FakeUsage }
  /**
   * stream:true: every chunk (the finish's, and the usage chunk when asked for), then the body
   * ends cleanly without `data: [DONE]` (as a proxy that closed an EOF-framed body looks). `usage`
   * as for `ok`.
   */
  | { kind: "no_done"; content?: string; usage?: FakeUsage }
  /** Sends the 200's headers (an event stream when stream:true, JSON otherwise), then nothing. */
  | { kind: "silent" }
  /**
   * stream:true: every content chunk (and the usage chunk, when asked for), then `data: [DONE]`,
   * but no chunk with a finish_reason. Not streamed: the completion with `finish_reason: null`.
   */
  | { kind: "no_finish"; content?: string; chunkDelayMs?: number }
  /**
   * stream:true: `afterChunks` chunks (the first is the role chunk), then a `data: {not json` line,
   * then the rest of the stream as usual, [DONE] included. Not streamed: as `malformed`.
   */
  | { kind: "malformed_chunk"; afterChunks: number; content?: string; chunkDelayMs?: number }
  /**
   * stream:true: `afterChunks` chunks (the first is the role chunk), then `data: {"error": …}`
   * (as OpenAI ends a stream that failed mid-way), and the stream ends.
   */
  | { kind: "error_event"; afterChunks: number; error: Record<string, unknown>; content?: string };

/** How a streamed (or plain) completion goes wrong on purpose; see the behaviours above. */
type CompletionFault =
  | { kind: "cut"; afterChunks: number }
  | { kind: "no_done" }
  | { kind: "stall"; afterChunks: number }
  | { kind: "no_finish" }
  | { kind: "malformed"; afterChunks: number }
  | { kind: "error_event"; afterChunks: number; error: Record<string, unknown> };

/** One request the fake received (every request, valid or not). */
export interface FakeCall {
  /** `model` from the JSON body ("" when missing or unparseable). */
  model: string;
  /** Date.now() when the request arrived. */
  at: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary request fields.
  body: any;
  headers: Record<string, string | string[] | undefined>;
  path: string;
  /** Same id on two calls = the same keep-alive connection. */
  connectionId: number;
}

export interface FakeOpenAI {
  /** Base URL for clients, e.g. http://127.0.0.1:PORT/v1 */
  url: string;
  port: number;
  calls: FakeCall[];
  callsFor(model: string): FakeCall[];
  /** Requests being answered now, and the most at once since the start (or the last reset). */
  inFlight(): number;
  maxInFlight(): number;
  /** Queues behaviours for a model, consumed one per call; then `setDefault` applies. */
  script(model: string, ...behaviours: FakeBehaviour[]): void;
  /** Default for a model ("*" = every model); the built-in default is `{ kind: "ok" }`. */
  setDefault(model: string, behaviour: FakeBehaviour): void;
  /** Forgets calls, scripts and defaults (the `calls` array is emptied in place). */
  reset(): void;
  /** Closes the server, ending hanging and keep-alive connections. */
  close(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: request bodies are whatever the client sent.
type RequestBody = any;
type WireToolCall = { id: string; type: "function"; function: { name: string; arguments: string } };
type ErrorBody = { error: { message: string; type: string; param: Nullable; code: Nullable } };

const SYSTEM_FINGERPRINT = "fp_f33640a400";
const CHAT_COMPLETIONS_PATH = "/v1/chat/completions";
const OPENAI_HEADERS = { "openai-version": "2020-10-01", "openai-organization": "org-fake" };
const MALFORMED_BODY = '{"id":"chatcmpl-broken","object":"chat.completion","choices":[{';

type Nullable = string | null;

export function openAIError(message: string, type: string, param: Nullable, code: Nullable): ErrorBody {
  return { error: { message, type, param, code } };
}

const KEYS_URL = "https://platform.openai.com/account/api-keys";
/** OpenAI's own wording, from captured responses. */
const MESSAGES = {
  missingApiKey: `You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from ${KEYS_URL}.`,
  invalidJson:
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
  contextLength:
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
  serverError: (requestId: string) =>
    `The server had an error processing your request. Sorry about that! You can retry your request, or contact us through our help center at help.openai.com if you keep seeing this error. (Please include the request ID ${requestId} in your email.)`,
  rateLimited: (model: string, retryInMs: number) =>
    `Rate limit reached for ${model} in organization org-fake on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in ${formatDuration(retryInMs)}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
  invalidApiKey: (key: string) =>
    `Incorrect API key provided: ${maskSecret(key)}. You can find your API key at ${KEYS_URL}.`,
};
const invalidRequest = (message: string, param: Nullable = null, code: Nullable = null) =>
  openAIError(message, "invalid_request_error", param, code);

/** OpenAI's error bodies, exported so tests can assert or replay them with `{ kind: "status" }`. */
export const openAIErrors = {
  missingApiKey: () => invalidRequest(MESSAGES.missingApiKey),
  invalidApiKey: (key: string) => invalidRequest(MESSAGES.invalidApiKey(key), null, "invalid_api_key"),
  invalidJson: () => invalidRequest(MESSAGES.invalidJson),
  missingModel: () => invalidRequest("you must provide a model parameter"),
  missingMessages: () =>
    invalidRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter"),
  invalidUrl: (method: string, path: string) => invalidRequest(`Invalid URL (${method} ${path})`),
  contextLength: () => invalidRequest(MESSAGES.contextLength, "messages", "context_length_exceeded"),
  serverError: (requestId: string) =>
    openAIError(MESSAGES.serverError(requestId), "server_error", null, null),
  rateLimited: (model: string, retryInMs: number) =>
    openAIError(MESSAGES.rateLimited(model, retryInMs), "requests", null, "rate_limit_exceeded"),
};

/** Starts the fake on 127.0.0.1 (a free port unless `port` is given). */
export async function startFakeOpenAI(options: { port?: number; apiKey?: string } = {}): Promise<FakeOpenAI> {
  const calls: FakeCall[] = [];
  const behaviours = new BehaviourScript<FakeBehaviour>({ kind: "ok" });
  let inFlight = 0;
  let maxInFlight = 0;

  const handle = async (context: FakeRequestContext): Promise<void> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    context.response.once("close", () => {
      inFlight--;
    });
    const requestId = randomId("req_", 32, "hex");
    const headers = { ...OPENAI_HEADERS, "x-request-id": requestId };
    const body: RequestBody = parseJson(context.rawBody);
    const model = typeof body?.model === "string" ? body.model : "";
    const { request, response, path, connectionId } = context;
    calls.push({ model, at: context.receivedAt, body, headers: { ...request.headers }, path, connectionId });

    if (context.method !== "POST" || context.path !== CHAT_COMPLETIONS_PATH) {
      return sendJson(response, 404, openAIErrors.invalidUrl(context.method, context.path), headers);
    }
    if (options.apiKey !== undefined) {
      const presented = /^Bearer (.+)$/i.exec(request.headers.authorization ?? "")?.[1];
      if (presented !== options.apiKey) {
        const error = presented ? openAIErrors.invalidApiKey(presented) : openAIErrors.missingApiKey();
        return sendJson(response, 401, error, headers);
      }
    }
    if (body === undefined || body === null || typeof body !== "object") {
      return sendJson(response, 400, openAIErrors.invalidJson(), headers);
    }
    if (model === "") return sendJson(response, 400, openAIErrors.missingModel(), headers);
    if (body.messages === undefined) return sendJson(response, 400, openAIErrors.missingMessages(), headers);

    await respond(context, behaviours.next(model), body, { ...headers, ...rateLimitHeaders(0) }, requestId);
  };

  const server = await startFakeHttpServer(handle, options);
  return {
    url: `${server.origin}/v1`,
    port: server.port,
    calls,
    callsFor: (model) => calls.filter((call) => call.model === model),
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
    script: (model, ...list) => behaviours.script(model, list),
    setDefault: (model, behaviour) => behaviours.setDefault(model, behaviour),
    reset() {
      calls.length = 0;
      maxInFlight = inFlight;
      behaviours.reset();
    },
    close: () => server.close(),
  };
}

async function respond(
  context: FakeRequestContext,
  behaviour: FakeBehaviour,
  body: RequestBody,
  headers: Record<string, string>,
  requestId: string,
): Promise<void> {
  const { response, signal } = context;
  const delayMs = "delayMs" in behaviour ? (behaviour.delayMs ?? 0) : 0;
  if (!(await sleep(delayMs, signal))) return;
  switch (behaviour.kind) {
    case "ok":
      return sendCompletion(context, body, behaviour, headers);
    case "status": {
      let error = behaviour.body ?? openAIError(`Status ${behaviour.status}`, "server_error", null, null);
      if (behaviour.echoMessages) {
        const quoted = JSON.stringify(body.messages);
        error = openAIError(`invalid input: ${quoted}`, "invalid_request_error", null, null);
      }
      const merged = { ...headers, ...behaviour.headers };
      if (typeof error === "string") return sendText(response, behaviour.status, error, merged);
      return sendJson(response, behaviour.status, error, merged);
    }
    case "rate_limited": {
      const retryMs = behaviour.retryAfterMs ?? (behaviour.retryAfterSeconds ?? 1) * 1000;
      const retryHeaders: Record<string, string> = {
        ...headers,
        ...rateLimitHeaders(retryMs),
        "retry-after": String(Math.ceil(retryMs / 1000)),
      };
      if (behaviour.retryAfterMs !== undefined)
        retryHeaders["retry-after-ms"] = String(behaviour.retryAfterMs);
      return sendJson(response, 429, openAIErrors.rateLimited(body.model, retryMs), retryHeaders);
    }
    case "server_error":
      return sendJson(response, behaviour.status ?? 500, openAIErrors.serverError(requestId), headers);
    case "context_length":
      return sendJson(response, 400, openAIErrors.contextLength(), headers);
    case "hang":
      return hang(signal);
    case "malformed":
      return sendText(response, 200, MALFORMED_BODY, { ...headers, "content-type": "application/json" });
    case "reset":
      return resetConnection(context);
    case "stream_cut": {
      const cut = { kind: "ok" as const, content: behaviour.content, usage: behaviour.usage };
      return sendCompletion(context, body, cut, headers, { kind: "cut", afterChunks: behaviour.afterChunks });
    }
    case "no_done": {
      const answer = { kind: "ok" as const, content: behaviour.content, usage: behaviour.usage };
      return sendCompletion(context, body, answer, headers, { kind: "no_done" });
    }
    case "stall": {
      const answer = {
        kind: "ok" as const,
        content: behaviour.content,
        chunkDelayMs: behaviour.chunkDelayMs,
        usage: behaviour.usage,
      };
      return sendCompletion(context, body, answer, headers, {
        kind: "stall",
        afterChunks: behaviour.afterChunks,
      });
    }
    case "silent":
      return sendHeadersOnly(context, body, headers);
    case "no_finish":
      return sendCompletion(
        context,
        body,
        { kind: "ok", content: behaviour.content, chunkDelayMs: behaviour.chunkDelayMs },
        headers,
        { kind: "no_finish" },
      );
    case "error_event":
      return sendCompletion(context, body, { kind: "ok", content: behaviour.content }, headers, {
        kind: "error_event",
        afterChunks: behaviour.afterChunks,
        error: behaviour.error,
      });
    case "malformed_chunk": {
      if (body.stream !== true) {
        return sendText(response, 200, MALFORMED_BODY, { ...headers, "content-type": "application/json" });
      }
      const answer = {
        kind: "ok" as const,
        content: behaviour.content,
        chunkDelayMs: behaviour.chunkDelayMs,
      };
      return sendCompletion(context, body, answer, headers, {
        kind: "malformed",
        afterChunks: behaviour.afterChunks,
      });
    }
  }
}

/** A 200's headers flushed at once, then silence until the client aborts or the fake closes. */
async function sendHeadersOnly(
  context: FakeRequestContext,
  body: RequestBody,
  headers: Record<string, string>,
): Promise<void> {
  if (!isWritable(context.response)) return;
  const contentType = body.stream === true ? "text/event-stream; charset=utf-8" : "application/json";
  context.response.writeHead(200, { ...headers, "content-type": contentType });
  context.response.flushHeaders();
  await hang(context.signal);
}

async function sendCompletion(
  context: FakeRequestContext,
  body: RequestBody,
  behaviour: Extract<FakeBehaviour, { kind: "ok" }>,
  headers: Record<string, string>,
  fault?: CompletionFault,
): Promise<void> {
  const toolCalls = (behaviour.toolCalls ?? []).map(
    (call): WireToolCall => ({
      id: call.id ?? randomId("call_", 24),
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    }),
  );
  const refusal = behaviour.refusal ?? null;
  const content =
    behaviour.content ?? (toolCalls.length > 0 || refusal !== null ? null : echoLastUser(body.messages));
  const finishReason =
    fault?.kind === "no_finish"
      ? null
      : (behaviour.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"));
  const usage = buildUsage(behaviour.usage ?? estimateUsage(body, content, toolCalls));
  const [id, created] = [randomId("chatcmpl-", 29), Math.floor(Date.now() / 1000)];
  const head = (object: string) => ({ id, object, created, model: body.model });

  const logprobs = logprobsAsked(body);
  const trailing = logprobs && behaviour.trailingLogprobs;
  const trailingEntries = trailing
    ? tokenLogprobs(trailing.tokens, logprobs.top, splitText(content ?? "").length)
    : [];
  if (body.stream !== true) {
    const message = {
      role: "assistant",
      content,
      refusal,
      annotations: [],
      ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
    };
    const completion = {
      ...head("chat.completion"),
      choices: [
        {
          index: 0,
          message,
          logprobs: logprobs
            ? {
                content:
                  content === null
                    ? null
                    : [...tokenLogprobs(splitText(content), logprobs.top), ...trailingEntries],
                refusal: refusal === null ? null : tokenLogprobs(splitText(refusal), logprobs.top),
              }
            : null,
          finish_reason: finishReason,
        },
      ],
      usage,
      service_tier: "default",
      system_fingerprint: SYSTEM_FINGERPRINT,
    };
    const jsonHeaders = { ...headers, "content-type": "application/json" };
    if (fault?.kind === "cut") return sendTruncated(context, 200, JSON.stringify(completion), jsonHeaders);
    if (fault?.kind === "stall") return sendHalfThenStall(context, JSON.stringify(completion), jsonHeaders);
    return sendJson(context.response, 200, completion, jsonHeaders);
  }

  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choices: unknown[], extra: object = {}) => ({
    ...head("chat.completion.chunk"),
    service_tier: "default",
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices,
    ...(includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const choice = (delta: object, finish_reason: Nullable = null, choiceLogprobs: unknown = null) => ({
    index: 0,
    delta,
    logprobs: choiceLogprobs,
    finish_reason,
  });
  // Asked for, OpenAI's role chunk carries empty log probabilities, each token's chunk its own.
  const pieceLogprobs = (piece: string, position: number, of: "content" | "refusal") => {
    if (!logprobs) return null;
    const entries = tokenLogprobs([piece], logprobs.top, position);
    return of === "content" ? { content: entries, refusal: null } : { content: null, refusal: entries };
  };
  const chunks: unknown[] = [
    chunk([
      choice(
        {
          role: "assistant",
          content: content === null ? null : "",
          refusal: refusal === null ? null : "",
        },
        null,
        logprobs ? { content: [], refusal: null } : null,
      ),
    ]),
  ];
  for (const [position, piece] of splitText(content ?? "").entries())
    chunks.push(chunk([choice({ content: piece }, null, pieceLogprobs(piece, position, "content"))]));
  for (const [position, piece] of splitText(refusal ?? "").entries())
    chunks.push(chunk([choice({ refusal: piece }, null, pieceLogprobs(piece, position, "refusal"))]));
  toolCalls.forEach((call, index) => {
    const opening = { index, id: call.id, type: "function", function: { ...call.function, arguments: "" } };
    chunks.push(chunk([choice({ tool_calls: [opening] })]));
    for (const piece of splitText(call.function.arguments)) {
      chunks.push(chunk([choice({ tool_calls: [{ index, function: { arguments: piece } }] })]));
    }
  });
  const trailingLogprobs = { content: trailingEntries, refusal: null };
  if (trailing?.carrier === "empty_delta") chunks.push(chunk([choice({}, null, trailingLogprobs)]));
  if (trailing?.carrier === "empty_content")
    chunks.push(chunk([choice({ content: "" }, null, trailingLogprobs)]));
  if (finishReason !== null)
    chunks.push(chunk([choice({}, finishReason, trailing?.carrier === "finish" ? trailingLogprobs : null)]));
  if (includeUsage) chunks.push(chunk([], { usage }));

  const stream = openEventStream(context.response, headers);
  for (const [position, payload] of chunks.entries()) {
    if (fault?.kind === "cut" && position >= fault.afterChunks) return cutConnection(context);
    if (fault?.kind === "stall" && position >= fault.afterChunks) return hang(context.signal);
    if (position > 0 && !(await sleep(behaviour.chunkDelayMs ?? 0, context.signal))) return;
    if (!isWritable(context.response)) return;
    if (fault?.kind === "malformed" && position === fault.afterChunks)
      await stream.raw("data: {not json\n\n");
    if (fault?.kind === "error_event" && position === fault.afterChunks) {
      await stream.send({ error: fault.error });
      stream.end();
      return;
    }
    await stream.send(payload);
  }
  if (fault?.kind === "cut") return cutConnection(context);
  if (fault?.kind === "stall") return hang(context.signal);
  if (fault?.kind !== "no_done") await stream.send("[DONE]");
  stream.end();
}

/** `logprobs: true` (with `top_logprobs`, 0-20) as OpenAI reads them; undefined when not asked. */
function logprobsAsked(body: RequestBody): { top: number } | undefined {
  if (body.logprobs !== true) return undefined;
  return { top: typeof body.top_logprobs === "number" ? body.top_logprobs : 0 };
}

/**
 * OpenAI's log probability of each token (one piece of splitText here), as its `logprobs.content`
 * entries: `token`, `logprob`, the token's UTF-8 `bytes`, and `top_logprobs` (the token itself
 * first, then made-up alternatives), deterministic so tests can compare them.
 * https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices
 */
export function tokenLogprobs(tokens: string[], top: number, first = 0) {
  const bytes = (token: string) => [...Buffer.from(token, "utf8")];
  return tokens.map((token, index) => {
    const position = first + index;
    const logprob = -Number((0.01 * (position + 1) + token.length / 1000).toFixed(6));
    const alternatives = Array.from({ length: top }, (_, rank) => {
      const alternative = rank === 0 ? token : `${token.trim() || "_"}~${rank}`;
      return {
        token: alternative,
        logprob: rank === 0 ? logprob : logprob - rank,
        bytes: bytes(alternative),
      };
    });
    return { token, logprob, bytes: bytes(token), top_logprobs: alternatives };
  });
}

/** Headers promising the whole `text`, half of it, then silence with the connection open. */
async function sendHalfThenStall(
  context: FakeRequestContext,
  text: string,
  headers: Record<string, string>,
): Promise<void> {
  if (!isWritable(context.response)) return;
  const bytes = Buffer.from(text);
  context.response.writeHead(200, { ...headers, "content-length": String(bytes.length) });
  context.response.write(bytes.subarray(0, bytes.length >> 1));
  await hang(context.signal);
}

/** Roughly tiktoken-sized: 4 characters a token, 3 tokens of framing per message, 85 per image. */
function estimateUsage(body: RequestBody, content: Nullable, toolCalls: WireToolCall[]): FakeUsage {
  const messages: RequestBody[] = Array.isArray(body.messages) ? body.messages : [];
  let characters = body.tools === undefined ? 0 : JSON.stringify(body.tools).length;
  let images = 0;
  for (const message of messages) {
    characters += contentText(message?.content).length;
    if (Array.isArray(message?.content))
      images += message.content.filter((part: RequestBody) => part?.type === "image_url").length;
    for (const call of message?.tool_calls ?? []) characters += JSON.stringify(call.function ?? {}).length;
  }
  const completionCharacters =
    (content ?? "").length +
    toolCalls.reduce((sum, call) => sum + call.function.name.length + call.function.arguments.length, 0);
  return {
    prompt_tokens: Math.ceil(characters / 4) + 3 * messages.length + 3 + 85 * images,
    completion_tokens: Math.max(1, Math.ceil(completionCharacters / 4)),
  };
}

function buildUsage(usage: FakeUsage) {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
    prompt_tokens_details: { cached_tokens: usage.cached_tokens ?? 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: usage.reasoning_tokens ?? 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** OpenAI's x-ratelimit-* headers; `resetMs` > 0 means the request bucket is empty. */
function rateLimitHeaders(resetMs: number): Record<string, string> {
  return {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": resetMs > 0 ? "0" : "499",
    "x-ratelimit-reset-requests": formatDuration(resetMs > 0 ? resetMs : 120),
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "199000",
    "x-ratelimit-reset-tokens": "300ms",
  };
}
