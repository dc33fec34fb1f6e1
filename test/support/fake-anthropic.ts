/**
 * A fake of Anthropic's Messages API over real HTTP, for integration and end-to-end tests: scripted
 * per model, with Anthropic's own message objects, SSE events, headers and error bodies.
 * Wire format: https://docs.claude.com/en/api/messages, https://docs.claude.com/en/docs/build-with-claude/streaming,
 * https://docs.claude.com/en/api/errors and https://docs.claude.com/en/api/rate-limits.
 */
import type { FakeCall } from "./fake-openai.js";
import {
  BehaviourScript,
  contentText,
  cutConnection,
  echoLastUser,
  type FakeRequestContext,
  hang,
  isWritable,
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

export type { FakeCall };

export type AnthropicStopReason =
  | "end_turn"
  | "max_tokens"
  | "tool_use"
  | "stop_sequence"
  | "pause_turn"
  | "refusal";
/** A tool_use block; `arguments` is a JSON object as text (as in the OpenAI fake). */
export type FakeAnthropicToolCall = { id?: string; name: string; arguments: string };
export type FakeAnthropicUsage = {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
};

/** What the fake does for one call. A "chunk" of a stream is one SSE event (pings included). */
export type FakeAnthropicBehaviour =
  | {
      kind: "ok";
      /** Defaults to `Echo: <last user message>` (no text block when only tool calls are given). */
      content?: string;
      toolCalls?: FakeAnthropicToolCall[];
      finishReason?: AnthropicStopReason;
      usage?: FakeAnthropicUsage;
      /** Wait before answering (before the response headers). */
      delayMs?: number;
      /** stream:true only: wait between SSE events. */
      chunkDelayMs?: number;
      /** stream:true only: events of types Anthropic may add later, sent after message_start. */
      extraEvents?: Array<[string, unknown]>;
    }
  | { kind: "status"; status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number }
  | { kind: "rate_limited"; retryAfterSeconds?: number }
  | { kind: "overloaded" }
  | { kind: "server_error"; status?: number }
  | { kind: "context_length" }
  | { kind: "bad_request"; message?: string }
  | { kind: "hang" }
  | { kind: "malformed" }
  | { kind: "reset" }
  /**
   * Sends `afterChunks` events (message_start, content_block_start, a ping, the deltas, …,
   * message_delta, message_stop), then cuts the connection. `usage` as for `ok` (message_start
   * reports its input counts, message_delta its output count).
   */
  | { kind: "stream_cut"; afterChunks: number; content?: string; usage?: FakeAnthropicUsage }
  /** A 200 stream: `afterChunks` events (default 4), then `event: error` (default overloaded), then the end. */
  | { kind: "stream_error"; afterChunks?: number; error?: AnthropicErrorBody; content?: string };

export interface FakeAnthropic {
  /** Base URL for `@ai-sdk/anthropic` (`baseURL`, it appends /messages): http://127.0.0.1:PORT/v1 */
  url: string;
  /** Base URL for `@anthropic-ai/sdk` (it appends /v1/messages): http://127.0.0.1:PORT */
  origin: string;
  port: number;
  calls: FakeCall[];
  callsFor(model: string): FakeCall[];
  /** Queues behaviours for a model, consumed one per call; then `setDefault` applies. */
  script(model: string, ...behaviours: FakeAnthropicBehaviour[]): void;
  /** Default for a model ("*" = every model); the built-in default is `{ kind: "ok" }`. */
  setDefault(model: string, behaviour: FakeAnthropicBehaviour): void;
  /** Forgets calls, scripts and defaults (the `calls` array is emptied in place). */
  reset(): void;
  /** Closes the server, ending hanging and keep-alive connections. */
  close(): Promise<void>;
}

/** The HTTP status Anthropic answers with for each error type (https://docs.claude.com/en/api/errors). */
const ERROR_STATUS = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
} as const;
export type AnthropicErrorType = keyof typeof ERROR_STATUS;
export type AnthropicErrorBody = {
  type: "error";
  error: { type: AnthropicErrorType; message: string };
  request_id?: string;
};

// biome-ignore lint/suspicious/noExplicitAny: request bodies are whatever the client sent.
type RequestBody = any;
type ContentBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown };
type OkBehaviour = Extract<FakeAnthropicBehaviour, { kind: "ok" }>;

const MESSAGES_PATH = "/v1/messages";
const ANTHROPIC_HEADERS = { "anthropic-organization-id": "00000000-0000-4000-8000-00000000fa4e" };
const MALFORMED_BODY = '{"id":"msg_01Broken","type":"message","role":"assistant","content":[{';

export function anthropicError(type: AnthropicErrorType, message: string): AnthropicErrorBody {
  return { type: "error", error: { type, message } };
}

/** Anthropic's error bodies, exported so tests can assert or replay them with `{ kind: "status" }`. */
export const anthropicErrors = {
  missingApiKey: () => anthropicError("authentication_error", "x-api-key header is required"),
  invalidApiKey: () => anthropicError("authentication_error", "invalid x-api-key"),
  missingVersion: () => anthropicError("invalid_request_error", "anthropic-version: header is required"),
  invalidJson: () =>
    anthropicError("invalid_request_error", "The request body is not valid JSON: expected value at line 1"),
  fieldRequired: (field: string) => anthropicError("invalid_request_error", `${field}: Field required`),
  systemRole: () =>
    anthropicError(
      "invalid_request_error",
      'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.',
    ),
  notFound: () => anthropicError("not_found_error", "Not Found"),
  contextLength: () =>
    anthropicError("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
  rateLimited: () =>
    anthropicError(
      "rate_limit_error",
      "This request would exceed the rate limit for your organization (fake-org) of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
    ),
  overloaded: () => anthropicError("overloaded_error", "Overloaded"),
  serverError: () => anthropicError("api_error", "Internal server error"),
};

/** Starts the fake on 127.0.0.1 (a free port unless `port` is given). */
export async function startFakeAnthropic(
  options: { port?: number; apiKey?: string } = {},
): Promise<FakeAnthropic> {
  const calls: FakeCall[] = [];
  const behaviours = new BehaviourScript<FakeAnthropicBehaviour>({ kind: "ok" });

  const handle = async (context: FakeRequestContext): Promise<void> => {
    const requestId = randomId("req_011C", 20);
    const headers = { ...ANTHROPIC_HEADERS, "request-id": requestId };
    const body: RequestBody = parseJson(context.rawBody);
    const model = typeof body?.model === "string" ? body.model : "";
    const { request, response, path, connectionId } = context;
    calls.push({ model, at: context.receivedAt, body, headers: { ...request.headers }, path, connectionId });
    const fail = (error: AnthropicErrorBody) =>
      sendJson(response, ERROR_STATUS[error.error.type], { ...error, request_id: requestId }, headers);

    if (context.method !== "POST" || path !== MESSAGES_PATH) return fail(anthropicErrors.notFound());
    if (options.apiKey !== undefined) {
      // `x-api-key` is what @ai-sdk/anthropic sends; @anthropic-ai/sdk 1.x sends `Authorization: Bearer`.
      const bearer = /^Bearer (.+)$/i.exec(request.headers.authorization ?? "")?.[1];
      const presented = request.headers["x-api-key"] ?? bearer;
      if (presented === undefined) return fail(anthropicErrors.missingApiKey());
      if (presented !== options.apiKey) return fail(anthropicErrors.invalidApiKey());
    }
    const version = request.headers["anthropic-version"];
    if (typeof version !== "string" || version === "") return fail(anthropicErrors.missingVersion());
    const invalid = validate(body, version);
    if (invalid) return fail(invalid);

    await respond(context, behaviours.next(model), body, { ...headers, ...rateLimitHeaders(0) }, requestId);
  };

  const server = await startFakeHttpServer(handle, options);
  return {
    url: `${server.origin}/v1`,
    origin: server.origin,
    port: server.port,
    calls,
    callsFor: (model) => calls.filter((call) => call.model === model),
    script: (model, ...list) => behaviours.script(model, list),
    setDefault: (model, behaviour) => behaviours.setDefault(model, behaviour),
    reset() {
      calls.length = 0;
      behaviours.reset();
    },
    close: () => server.close(),
  };
}

/**
 * The minimal checks Anthropic makes before generating: required fields, and (before API version
 * 2026-10-21, whose MessageParam gained a "system" role) a system prompt only as the top-level field.
 */
function validate(body: RequestBody, version: string): AnthropicErrorBody | undefined {
  if (body === undefined || body === null || typeof body !== "object") return anthropicErrors.invalidJson();
  for (const field of ["model", "messages", "max_tokens"]) {
    if (body[field] === undefined) return anthropicErrors.fieldRequired(field);
  }
  const systemMessage =
    Array.isArray(body.messages) && body.messages.some((message: RequestBody) => message?.role === "system");
  if (systemMessage && version < "2026-10-21") return anthropicErrors.systemRole();
  return undefined;
}

async function respond(
  context: FakeRequestContext,
  behaviour: FakeAnthropicBehaviour,
  body: RequestBody,
  headers: Record<string, string>,
  requestId: string,
): Promise<void> {
  const { response, signal } = context;
  const delayMs = "delayMs" in behaviour ? (behaviour.delayMs ?? 0) : 0;
  if (!(await sleep(delayMs, signal))) return;
  const fail = (error: AnthropicErrorBody, status: number = ERROR_STATUS[error.error.type], extra = {}) =>
    sendJson(response, status, { ...error, request_id: requestId }, { ...headers, ...extra });
  switch (behaviour.kind) {
    case "ok":
      return sendMessage(context, body, behaviour, headers);
    case "status": {
      const error = behaviour.body ?? anthropicError("api_error", `Status ${behaviour.status}`);
      const merged = { ...headers, ...behaviour.headers };
      if (typeof error === "string") return sendText(response, behaviour.status, error, merged);
      return sendJson(response, behaviour.status, error, merged);
    }
    case "rate_limited": {
      const seconds = behaviour.retryAfterSeconds ?? 1;
      const limited = { ...rateLimitHeaders(seconds), "retry-after": String(Math.ceil(seconds)) };
      return fail(anthropicErrors.rateLimited(), 429, limited);
    }
    case "overloaded":
      return fail(anthropicErrors.overloaded());
    case "server_error": {
      const status = behaviour.status ?? 500;
      return fail(status === 529 ? anthropicErrors.overloaded() : anthropicErrors.serverError(), status);
    }
    case "context_length":
      return fail(anthropicErrors.contextLength());
    case "bad_request":
      return fail(anthropicError("invalid_request_error", behaviour.message ?? "Invalid request"));
    case "hang":
      return hang(signal);
    case "malformed":
      return sendText(response, 200, MALFORMED_BODY, { ...headers, "content-type": "application/json" });
    case "reset":
      return resetConnection(context);
    case "stream_cut": {
      const cut = { kind: "ok" as const, content: behaviour.content, usage: behaviour.usage };
      return sendMessage(context, body, cut, headers, {
        cutAfter: behaviour.afterChunks,
      });
    }
    case "stream_error": {
      const error = behaviour.error ?? anthropicErrors.overloaded();
      // Without stream:true there is no stream to break: the same error arrives as a plain response.
      if (body.stream !== true) return fail(error);
      const ok = { kind: "ok" as const, content: behaviour.content };
      return sendMessage(context, body, ok, headers, { errorAfter: behaviour.afterChunks ?? 4, error });
    }
  }
}

type Breakage = { cutAfter?: number; errorAfter?: number; error?: AnthropicErrorBody };

async function sendMessage(
  context: FakeRequestContext,
  body: RequestBody,
  behaviour: OkBehaviour,
  headers: Record<string, string>,
  breakage: Breakage = {},
): Promise<void> {
  const toolCalls = behaviour.toolCalls ?? [];
  const text = behaviour.content ?? (toolCalls.length > 0 ? undefined : echoLastUser(body.messages));
  const blocks: ContentBlock[] = text === undefined ? [] : [{ type: "text", text }];
  for (const call of toolCalls) {
    const input = parseJson(call.arguments) ?? {};
    blocks.push({ type: "tool_use", id: call.id ?? randomId("toolu_01", 22), name: call.name, input });
  }
  const stopReason = behaviour.finishReason ?? (toolCalls.length > 0 ? "tool_use" : "end_turn");
  const stopSequence = stopReason === "stop_sequence" ? (body.stop_sequences?.[0] ?? null) : null;
  const usage = wireUsage(behaviour.usage ?? estimateUsage(body, text, toolCalls));
  const message = {
    id: randomId("msg_01", 22),
    type: "message",
    role: "assistant",
    model: body.model,
    content: blocks,
    stop_reason: stopReason,
    stop_sequence: stopSequence,
    usage,
  };

  if (body.stream !== true) {
    const jsonHeaders = { ...headers, "content-type": "application/json" };
    if (breakage.cutAfter === undefined) return sendJson(context.response, 200, message, jsonHeaders);
    return sendTruncated(context, 200, JSON.stringify(message), jsonHeaders);
  }

  const events = streamEvents(message, blocks, usage);
  if (behaviour.extraEvents) events.splice(1, 0, ...behaviour.extraEvents);
  const stream = openEventStream(context.response, headers);
  for (const [position, [name, payload]] of events.entries()) {
    if (position === breakage.cutAfter) return cutConnection(context);
    if (position === breakage.errorAfter) {
      await stream.send(breakage.error, "error");
      return stream.end();
    }
    if (position > 0 && !(await sleep(behaviour.chunkDelayMs ?? 0, context.signal))) return;
    if (!isWritable(context.response)) return;
    await stream.send(payload, name);
  }
  if (breakage.cutAfter !== undefined) return cutConnection(context);
  stream.end();
}

/**
 * The events of a streamed message, in Anthropic's order: message_start (empty content, output
 * tokens 1), a ping, each block's start / deltas / stop, message_delta (stop reason and final
 * usage), message_stop. Tool input arrives as input_json_delta pieces, the first one empty.
 */
function streamEvents(
  message: { content: ContentBlock[]; stop_reason: string; stop_sequence: string | null },
  blocks: ContentBlock[],
  usage: ReturnType<typeof wireUsage>,
): [string, unknown][] {
  const start = { ...message, content: [], stop_reason: null, stop_sequence: null };
  const events: [string, unknown][] = [
    [
      "message_start",
      { type: "message_start", message: { ...start, usage: { ...usage, output_tokens: 1 } } },
    ],
  ];
  blocks.forEach((block, index) => {
    const opening = block.type === "text" ? { type: "text", text: "" } : { ...block, input: {} };
    events.push(["content_block_start", { type: "content_block_start", index, content_block: opening }]);
    if (index === 0) events.push(["ping", { type: "ping" }]);
    const deltas =
      block.type === "text"
        ? splitText(block.text).map((text) => ({ type: "text_delta", text }))
        : ["", ...splitText(JSON.stringify(block.input))].map((partial_json) => ({
            type: "input_json_delta",
            partial_json,
          }));
    for (const delta of deltas)
      events.push(["content_block_delta", { type: "content_block_delta", index, delta }]);
    events.push(["content_block_stop", { type: "content_block_stop", index }]);
  });
  if (blocks.length === 0) events.push(["ping", { type: "ping" }]);
  const { stop_reason, stop_sequence } = message;
  const { cache_creation: _, service_tier: __, ...finalUsage } = usage;
  events.push([
    "message_delta",
    { type: "message_delta", delta: { stop_reason, stop_sequence }, usage: finalUsage },
  ]);
  events.push(["message_stop", { type: "message_stop" }]);
  return events;
}

/** About 4 characters a token over system, messages and tools; 4 tokens of framing per message. */
function estimateUsage(
  body: RequestBody,
  text: string | undefined,
  toolCalls: FakeAnthropicToolCall[],
): FakeAnthropicUsage {
  const messages: RequestBody[] = Array.isArray(body.messages) ? body.messages : [];
  let characters =
    contentText(body.system).length + (body.tools === undefined ? 0 : JSON.stringify(body.tools).length);
  for (const message of messages) characters += contentText(message?.content).length;
  const output =
    (text ?? "").length + toolCalls.reduce((sum, call) => sum + call.name.length + call.arguments.length, 0);
  return {
    input_tokens: Math.ceil(characters / 4) + 4 * messages.length,
    output_tokens: Math.max(1, Math.ceil(output / 4)),
  };
}

function wireUsage(usage: FakeAnthropicUsage) {
  const cacheCreation = usage.cache_creation_input_tokens ?? 0;
  return {
    input_tokens: usage.input_tokens,
    cache_creation_input_tokens: cacheCreation,
    cache_read_input_tokens: usage.cache_read_input_tokens ?? 0,
    cache_creation: { ephemeral_5m_input_tokens: cacheCreation, ephemeral_1h_input_tokens: 0 },
    output_tokens: usage.output_tokens,
    service_tier: "standard",
  };
}

/** Anthropic's anthropic-ratelimit-* headers (resets are RFC 3339); `retryAfterSeconds` > 0 = empty bucket. */
function rateLimitHeaders(retryAfterSeconds: number): Record<string, string> {
  const limited = retryAfterSeconds > 0;
  const reset = new Date(Date.now() + (limited ? retryAfterSeconds * 1000 : 1200))
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z");
  const bucket = (name: string, limit: number, remaining: number) => ({
    [`anthropic-ratelimit-${name}-limit`]: String(limit),
    [`anthropic-ratelimit-${name}-remaining`]: String(remaining),
    [`anthropic-ratelimit-${name}-reset`]: reset,
  });
  return {
    ...bucket("requests", 50, limited ? 0 : 49),
    ...bucket("input-tokens", 30000, 29000),
    ...bucket("output-tokens", 8000, 8000),
    ...bucket("tokens", 38000, 37000),
  };
}
