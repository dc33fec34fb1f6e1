/**
 * A fake of Google's Generative Language API (Gemini, v1beta) over real HTTP, for integration and
 * end-to-end tests: scripted per model (taken from the URL path), with Google's own response
 * objects, SSE chunks and google.rpc error bodies.
 * Wire format: https://ai.google.dev/api/generate-content, https://ai.google.dev/gemini-api/docs/troubleshooting
 * and https://ai.google.dev/gemini-api/docs/rate-limits.
 */
import type { FakeCall } from "./fake-openai.js";
import {
  BehaviourScript,
  cutConnection,
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

export type GeminiFinishReason =
  | "STOP"
  | "MAX_TOKENS"
  | "SAFETY"
  | "RECITATION"
  | "LANGUAGE"
  | "OTHER"
  | "BLOCKLIST"
  | "PROHIBITED_CONTENT"
  | "SPII"
  | "MALFORMED_FUNCTION_CALL"
  | "MALFORMED_RESPONSE"
  | "MISSING_THOUGHT_SIGNATURE"
  | "IMAGE_PROHIBITED_CONTENT"
  | "IMAGE_SAFETY"
  | "FINISH_REASON_UNSPECIFIED"
  | "UNEXPECTED_TOOL_CALL"
  | "TOO_MANY_TOOL_CALLS"
  // A reason Gemini may add later (clients must not take it for STOP).
  | (string & {});
/** A functionCall part; `arguments` is a JSON object as text (as in the OpenAI fake). */
export type FakeGeminiToolCall = { name: string; arguments: string };
export type FakeGeminiUsage = {
  promptTokenCount: number;
  candidatesTokenCount: number;
  cachedContentTokenCount?: number;
  thoughtsTokenCount?: number;
};

/** What the fake does for one call. A "chunk" of a stream is one SSE `data:` event. */
export type FakeGeminiBehaviour =
  | {
      kind: "ok";
      /** Defaults to `Echo: <last user text>`; none when only tool calls are given or finishReason is SAFETY. */
      content?: string;
      toolCalls?: FakeGeminiToolCall[];
      finishReason?: GeminiFinishReason;
      usage?: FakeGeminiUsage;
      /** Wait before answering (before the response headers). */
      delayMs?: number;
      /** Streaming only: wait between chunks. */
      chunkDelayMs?: number;
    }
  | { kind: "status"; status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number }
  | { kind: "rate_limited"; retryAfterSeconds?: number }
  | { kind: "overloaded" }
  | { kind: "server_error"; status?: number }
  | { kind: "context_length" }
  | { kind: "bad_request"; message?: string }
  /** 200 with `promptFeedback.blockReason` and no candidates. */
  | { kind: "prompt_blocked"; blockReason?: "SAFETY" | "OTHER" | "BLOCKLIST" | "PROHIBITED_CONTENT" }
  | { kind: "hang" }
  | { kind: "malformed" }
  | { kind: "reset" }
  /**
   * Streaming: sends `afterChunks` chunks (one per text piece, each with usageMetadata: the
   * prompt's count, the last one the whole usage), then cuts the connection. `usage` as for `ok`.
   */
  | { kind: "stream_cut"; afterChunks: number; content?: string; usage?: FakeGeminiUsage }
  /** A 200 stream that sends `afterChunks` chunks (default 1), then an `{"error": ...}` chunk, then ends. */
  | { kind: "stream_error"; afterChunks?: number; status?: 500 | 503; content?: string };

export interface FakeGemini {
  /** Base URL for `@ai-sdk/google` (`baseURL`): http://127.0.0.1:PORT/v1beta */
  url: string;
  /** Base URL for `@google/genai` (`httpOptions.baseUrl`; it adds the v1beta itself): http://127.0.0.1:PORT */
  origin: string;
  port: number;
  calls: FakeCall[];
  callsFor(model: string): FakeCall[];
  /** Queues behaviours for a model, consumed one per call; then `setDefault` applies. */
  script(model: string, ...behaviours: FakeGeminiBehaviour[]): void;
  /** Default for a model ("*" = every model); the built-in default is `{ kind: "ok" }`. */
  setDefault(model: string, behaviour: FakeGeminiBehaviour): void;
  /** Forgets calls, scripts and defaults (the `calls` array is emptied in place). */
  reset(): void;
  /** Closes the server, ending hanging and keep-alive connections. */
  close(): Promise<void>;
}

export type GeminiErrorBody = {
  error: { code: number; message: string; status: string; details?: Record<string, unknown>[] };
};

// biome-ignore lint/suspicious/noExplicitAny: request bodies are whatever the client sent.
type RequestBody = any;
type OkBehaviour = Extract<FakeGeminiBehaviour, { kind: "ok" }>;
type Part = { text: string } | { functionCall: { name: string; args: unknown } };

const ROUTE = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;
const [JSON_TYPE, HTML_TYPE] = ["application/json; charset=UTF-8", "text/html; charset=UTF-8"];
const GOOGLE_HEADERS = { server: "scaffolding on HTTPServer2", vary: "Origin, X-Origin, Referer" };
const MALFORMED_BODY = '{"candidates":[{"content":{"parts":[{"text":"Hel';
const NOT_FOUND_PAGE =
  "<!DOCTYPE html>\n<html lang=en>\n<title>Error 404 (Not Found)!!1</title>\n<p><b>404.</b> <ins>That’s an error.</ins>\n";
const HARM_CATEGORIES = ["HATE_SPEECH", "DANGEROUS_CONTENT", "HARASSMENT", "SEXUALLY_EXPLICIT"].map(
  (name) => `HARM_CATEGORY_${name}`,
);
const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

export function geminiError(
  code: number,
  message: string,
  details?: Record<string, unknown>[],
): GeminiErrorBody {
  const error = { code, message, status: STATUS_NAMES[code] ?? "UNKNOWN" };
  return { error: details === undefined ? error : { ...error, details } };
}

const QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
/** Google's error bodies, exported so tests can assert or replay them with `{ kind: "status" }`. */
export const geminiErrors = {
  invalidApiKey: () =>
    geminiError(400, "API key not valid. Please pass a valid API key.", [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: "API_KEY_INVALID",
        domain: "googleapis.com",
        metadata: { service: "generativelanguage.googleapis.com" },
      },
    ]),
  missingApiKey: () =>
    geminiError(
      403,
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    ),
  invalidJson: () => geminiError(400, "Invalid JSON payload received. Unexpected token."),
  missingContents: () => geminiError(400, "* GenerateContentRequest.contents: contents is not specified\n"),
  invalidRole: () => geminiError(400, "Please use a valid role: user, model."),
  notAlternating: () =>
    geminiError(400, "Please ensure that multiturn requests alternate between user and model."),
  jsonWithFunctions: () =>
    geminiError(400, "Function calling with a response mime type: 'application/json' is unsupported"),
  contextLength: () =>
    geminiError(
      400,
      "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    ),
  rateLimited: (model: string, retryAfterSeconds: number) =>
    geminiError(
      429,
      `You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: ${QUOTA_METRIC}, limit: 10, model: ${model}\nPlease retry in ${retryAfterSeconds}s.`,
      [
        {
          "@type": "type.googleapis.com/google.rpc.QuotaFailure",
          violations: [
            {
              quotaMetric: QUOTA_METRIC,
              quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
              quotaDimensions: { location: "global", model },
              quotaValue: "10",
            },
          ],
        },
        {
          "@type": "type.googleapis.com/google.rpc.Help",
          links: [
            {
              description: "Learn more about Gemini API quotas",
              url: "https://ai.google.dev/gemini-api/docs/rate-limits",
            },
          ],
        },
        {
          "@type": "type.googleapis.com/google.rpc.RetryInfo",
          retryDelay: `${Math.floor(retryAfterSeconds)}s`,
        },
      ],
    ),
  internal: () =>
    geminiError(
      500,
      "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
  overloaded: () => geminiError(503, "The model is overloaded. Please try again later."),
};

/** Starts the fake on 127.0.0.1 (a free port unless `port` is given). */
export async function startFakeGemini(options: { port?: number; apiKey?: string } = {}): Promise<FakeGemini> {
  const calls: FakeCall[] = [];
  const behaviours = new BehaviourScript<FakeGeminiBehaviour>({ kind: "ok" });

  const handle = async (context: FakeRequestContext): Promise<void> => {
    const { request, response, path, connectionId } = context;
    const route = ROUTE.exec(path);
    const model = route?.[1] === undefined ? "" : decodeURIComponent(route[1]);
    const body: RequestBody = parseJson(context.rawBody);
    calls.push({ model, at: context.receivedAt, body, headers: { ...request.headers }, path, connectionId });
    const headers = { ...GOOGLE_HEADERS, "content-type": JSON_TYPE };
    const fail = (error: GeminiErrorBody) => sendJson(response, error.error.code, error, headers);

    if (context.method !== "POST" || route === undefined || route === null)
      return sendText(response, 404, NOT_FOUND_PAGE, { ...GOOGLE_HEADERS, "content-type": HTML_TYPE });
    const query = new URL(request.url ?? "/", "http://fake").searchParams;
    if (options.apiKey !== undefined) {
      const header = request.headers["x-goog-api-key"];
      const presented = (typeof header === "string" ? header : undefined) ?? query.get("key") ?? undefined;
      if (presented === undefined) return fail(geminiErrors.missingApiKey());
      if (presented !== options.apiKey) return fail(geminiErrors.invalidApiKey());
    }
    if (body === undefined || body === null || typeof body !== "object")
      return fail(geminiErrors.invalidJson());
    if (!Array.isArray(body.contents) || body.contents.length === 0)
      return fail(geminiErrors.missingContents());
    if (body.contents.some((content: RequestBody) => !["user", "model", undefined].includes(content?.role)))
      return fail(geminiErrors.invalidRole());
    // Gemini models insist that turns alternate (a function response is a user turn): two user or
    // two model turns in a row are a 400, as older models answer (newer ones may mishandle them).
    if (
      body.contents.some(
        (content: RequestBody, position: number) =>
          position > 0 && (content?.role ?? "user") === (body.contents[position - 1]?.role ?? "user"),
      )
    )
      return fail(geminiErrors.notAlternating());

    // Gemini 1.x and 2.x take no JSON response mime type beside function declarations (Gemini 3
    // takes both): a 400, as those models answer (reported against 2.5 Flash and Pro).
    if (
      /(^|\/)gemini-[12](?:[.-]|$)/i.test(model) &&
      body.generationConfig?.responseMimeType === "application/json" &&
      body.tools?.some((tool: RequestBody) => tool?.functionDeclarations?.length)
    )
      return fail(geminiErrors.jsonWithFunctions());

    const stream =
      route[2] === "streamGenerateContent" ? (query.get("alt") === "sse" ? "sse" : "json") : "none";
    await respond(context, behaviours.next(model), { body, model, stream, headers });
  };

  const server = await startFakeHttpServer(handle, options);
  return {
    url: `${server.origin}/v1beta`,
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

/** One generate call: `stream` is how the answer is framed (none, an SSE stream, or a streamed JSON array). */
type Call = {
  body: RequestBody;
  model: string;
  stream: "none" | "sse" | "json";
  headers: Record<string, string>;
};

async function respond(
  context: FakeRequestContext,
  behaviour: FakeGeminiBehaviour,
  call: Call,
): Promise<void> {
  const { response, signal } = context;
  const delayMs = "delayMs" in behaviour ? (behaviour.delayMs ?? 0) : 0;
  if (!(await sleep(delayMs, signal))) return;
  const fail = (error: GeminiErrorBody, status = error.error.code) =>
    sendJson(response, status, error, call.headers);
  switch (behaviour.kind) {
    case "ok":
      return sendResponses(context, call, buildResponses(call, behaviour), behaviour.chunkDelayMs);
    case "status": {
      const error = behaviour.body ?? geminiError(behaviour.status, `Status ${behaviour.status}`);
      const merged = { ...call.headers, ...behaviour.headers };
      if (typeof error === "string") return sendText(response, behaviour.status, error, merged);
      return sendJson(response, behaviour.status, error, merged);
    }
    case "rate_limited":
      return fail(geminiErrors.rateLimited(call.model, behaviour.retryAfterSeconds ?? 17));
    case "overloaded":
      return fail(geminiErrors.overloaded());
    case "server_error":
      return behaviour.status === 503
        ? fail(geminiErrors.overloaded())
        : fail(geminiErrors.internal(), behaviour.status);
    case "context_length":
      return fail(geminiErrors.contextLength());
    case "bad_request":
      return fail(geminiError(400, behaviour.message ?? "Request contains an invalid argument."));
    case "prompt_blocked": {
      const blockReason = behaviour.blockReason ?? "SAFETY";
      const usage = estimateUsage(call.body, "", []);
      const blocked = {
        promptFeedback: { blockReason, safetyRatings: safetyRatings(blockReason === "SAFETY") },
        usageMetadata: { promptTokenCount: usage.promptTokenCount, totalTokenCount: usage.promptTokenCount },
        modelVersion: call.model,
        responseId: randomId("", 22),
      };
      return sendResponses(context, call, [blocked]);
    }
    case "hang":
      return hang(signal);
    case "malformed":
      return sendText(response, 200, MALFORMED_BODY, call.headers);
    case "reset":
      return resetConnection(context);
    case "stream_cut": {
      const cut = { kind: "ok" as const, content: behaviour.content, usage: behaviour.usage };
      const responses = buildResponses(call, cut);
      if (call.stream === "none")
        return sendTruncated(context, 200, JSON.stringify(responses[0]), call.headers);
      return sendResponses(context, call, responses, 0, { cutAfter: behaviour.afterChunks });
    }
    case "stream_error": {
      const error = behaviour.status === 500 ? geminiErrors.internal() : geminiErrors.overloaded();
      // Without a stream there is nothing to break: the same error arrives as a plain response.
      if (call.stream === "none") return fail(error);
      const responses = buildResponses(call, { kind: "ok", content: behaviour.content });
      return sendResponses(context, call, responses, 0, { errorAfter: behaviour.afterChunks ?? 1, error });
    }
  }
}

/**
 * The GenerateContentResponse objects of one answer: a single one when not streaming, else one per
 * text piece (all function calls arrive whole, in one chunk), the last carrying finishReason,
 * safety ratings and the full usage; earlier chunks carry the prompt's usage only, as Gemini's do.
 */
function buildResponses(call: Call, behaviour: OkBehaviour): object[] {
  const toolCalls = behaviour.toolCalls ?? [];
  const finishReason = behaviour.finishReason ?? "STOP";
  const silent = toolCalls.length > 0 || finishReason === "SAFETY";
  const text = behaviour.content ?? (silent ? undefined : echo(call.body.contents));
  const calls: Part[] = toolCalls.map((tool) => ({
    functionCall: { name: tool.name, args: parseJson(tool.arguments) ?? {} },
  }));
  const usage = behaviour.usage ?? estimateUsage(call.body, text ?? "", toolCalls);
  const usageMetadata = {
    promptTokenCount: usage.promptTokenCount,
    candidatesTokenCount: usage.candidatesTokenCount,
    totalTokenCount: usage.promptTokenCount + usage.candidatesTokenCount + (usage.thoughtsTokenCount ?? 0),
    ...(usage.cachedContentTokenCount === undefined
      ? {}
      : { cachedContentTokenCount: usage.cachedContentTokenCount }),
    promptTokensDetails: [{ modality: "TEXT", tokenCount: usage.promptTokenCount }],
    ...(usage.thoughtsTokenCount === undefined ? {} : { thoughtsTokenCount: usage.thoughtsTokenCount }),
  };
  const pieces: Part[][] =
    call.stream === "none"
      ? [[...(text === undefined ? [] : [{ text }]), ...calls]]
      : [...splitText(text ?? "").map((piece) => [{ text: piece }]), ...(calls.length > 0 ? [calls] : [])];
  if (pieces.length === 0) pieces.push([]);
  const [responseId, modelVersion] = [randomId("", 22), call.model];
  const promptUsage = { promptTokenCount: usage.promptTokenCount, totalTokenCount: usage.promptTokenCount };
  return pieces.map((parts, position) => {
    const last = position === pieces.length - 1;
    const candidate = {
      ...(parts.length > 0 ? { content: { parts, role: "model" } } : {}),
      ...(last ? { finishReason, safetyRatings: safetyRatings(finishReason === "SAFETY") } : {}),
      index: 0,
    };
    return {
      candidates: [candidate],
      usageMetadata: last ? usageMetadata : promptUsage,
      modelVersion,
      responseId,
    };
  });
}

type Breakage = { cutAfter?: number; errorAfter?: number; error?: GeminiErrorBody };

/** Sends the responses as one JSON object, as SSE `data:` chunks (\r\n framing, like Google), or as a JSON array. */
async function sendResponses(
  context: FakeRequestContext,
  call: Call,
  responses: object[],
  chunkDelayMs = 0,
  breakage: Breakage = {},
): Promise<void> {
  if (call.stream === "none") return sendJson(context.response, 200, responses[0], call.headers);
  const contentType = call.stream === "sse" ? "text/event-stream" : JSON_TYPE;
  const stream = openEventStream(context.response, { ...GOOGLE_HEADERS, "content-type": contentType });
  const frame = (payload: object, position: number) =>
    call.stream === "sse"
      ? `data: ${JSON.stringify(payload)}\r\n\r\n`
      : `${position === 0 ? "[" : ",\r\n"}${JSON.stringify(payload)}`;
  for (const [position, payload] of responses.entries()) {
    if (position === breakage.cutAfter) return cutConnection(context);
    if (position === breakage.errorAfter && breakage.error !== undefined) {
      await stream.raw(frame(breakage.error, position));
      if (call.stream === "json") await stream.raw("]");
      return stream.end();
    }
    if (position > 0 && !(await sleep(chunkDelayMs, context.signal))) return;
    if (!isWritable(context.response)) return;
    await stream.raw(frame(payload, position));
  }
  if (breakage.cutAfter !== undefined) return cutConnection(context);
  if (call.stream === "json") await stream.raw("]");
  stream.end();
}

function safetyRatings(blocked: boolean) {
  return HARM_CATEGORIES.map((category) =>
    blocked && category === "HARM_CATEGORY_DANGEROUS_CONTENT"
      ? { category, probability: "HIGH", blocked: true }
      : { category, probability: "NEGLIGIBLE" },
  );
}

/** `Echo: <last user text>` (first 200 characters): deterministic, and shows what was sent. */
function echo(contents: unknown): string {
  const list = Array.isArray(contents) ? contents : [];
  const lastUser = [...list].reverse().find((content) => (content?.role ?? "user") === "user");
  return `Echo: ${partsText(lastUser).slice(0, 200)}`;
}

/** The text parts of a Content (systemInstruction has the same shape). */
function partsText(content: unknown): string {
  const parts = (content as { parts?: unknown } | undefined)?.parts;
  if (!Array.isArray(parts)) return "";
  return parts
    .filter((part) => typeof part?.text === "string")
    .map((part) => part.text)
    .join(" ");
}

/** About 4 characters a token over the system instruction, contents and tools. */
function estimateUsage(body: RequestBody, text: string, toolCalls: FakeGeminiToolCall[]): FakeGeminiUsage {
  const contents: unknown[] = Array.isArray(body.contents) ? body.contents : [];
  let characters = partsText(body.systemInstruction).length;
  characters += body.tools === undefined ? 0 : JSON.stringify(body.tools).length;
  for (const content of contents) characters += partsText(content).length;
  const output =
    text.length + toolCalls.reduce((sum, call) => sum + call.name.length + call.arguments.length, 0);
  return {
    promptTokenCount: Math.max(1, Math.ceil(characters / 4)),
    candidatesTokenCount: Math.max(1, Math.ceil(output / 4)),
  };
}
