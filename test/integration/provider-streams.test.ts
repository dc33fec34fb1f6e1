import type { ChatRequest, ModelConfig, ProviderConfig } from "@cascade/shared";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAnthropicAdapter } from "../../packages/engine/src/providers/anthropic.js";
import { createGeminiAdapter } from "../../packages/engine/src/providers/gemini.js";
import { createProviderFetch, createProviderHttp } from "../../packages/engine/src/providers/http.js";
import { asksStreamUsage, createOpenAIAdapter } from "../../packages/engine/src/providers/openai.js";
import { ProviderError } from "../../packages/engine/src/providers/provider-error.js";
import type { ProviderAdapter, ProviderCall, StreamSink } from "../../packages/engine/src/providers/types.js";
import { anthropicError, type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeGemini, startFakeGemini } from "../support/fake-gemini.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type FakeHttpServer,
  type FakeRequestContext,
  openEventStream,
  sleep,
  splitText,
  startFakeHttpServer,
} from "../support/fake-upstream-common.js";

/**
 * Each provider adapter's `stream` against a fake that speaks the provider's wire format over real
 * HTTP: deltas arrive as the upstream sends them and add up to the completion, usage is filled,
 * and every way a stream can fail — a cut connection, the provider's own error event mid-stream, a
 * 429 before the stream, a malformed chunk, an abort — ends as the contract's reason.
 */

const CONTENT = "The quick brown fox jumps over the lazy dog";
const PIECES = splitText(CONTENT);
const ARGUMENTS = '{"city": "Paris", "units": "celsius", "days": 3}';
const TOOLS: ChatRequest["tools"] = [
  { type: "function", function: { name: "weather", parameters: { type: "object" } } },
];

type Delta = Parameters<StreamSink["delta"]>[0];

/** A sink that keeps every delta with the time it arrived. */
function recordingSink(onDelta?: (delta: Delta) => void) {
  const deltas: Array<Delta & { at: number }> = [];
  return {
    deltas,
    content: () => deltas.map((delta) => delta.content ?? "").join(""),
    contentPieces: () => deltas.flatMap((delta) => (delta.content === undefined ? [] : [delta.content])),
    /** Each tool call as the sink saw it: id and name from its first fragment, arguments concatenated. */
    toolCalls() {
      const calls: Array<{ id?: string; name?: string; arguments: string }> = [];
      for (const delta of deltas) {
        for (const fragment of delta.toolCalls ?? []) {
          const call = calls[fragment.index] ?? { arguments: "" };
          calls[fragment.index] = call;
          if (fragment.id !== undefined) call.id = fragment.id;
          if (fragment.name !== undefined) call.name = fragment.name;
          call.arguments += fragment.arguments ?? "";
        }
      }
      return calls;
    },
    delta(delta: Delta) {
      deltas.push({ ...delta, at: Date.now() });
      onDelta?.(delta);
    },
  } satisfies StreamSink & Record<string, unknown>;
}

function callFor(
  upstreamName: string,
  request: Partial<ChatRequest> = {},
  signal = AbortSignal.timeout(10_000),
): ProviderCall {
  return {
    request: {
      messages: [{ role: "user", content: "Say something" }],
      max_tokens: 100,
      ...request,
    } as ChatRequest,
    modelId: upstreamName,
    model: { provider: "test", name: upstreamName } as ModelConfig,
    upstreamName,
    signal,
  };
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

const fetch = createProviderFetch();
const providerConfig = (type: ProviderConfig["type"], base_url: string) =>
  ({ type, base_url }) as ProviderConfig;

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let gemini: FakeGemini;
let adapters: Record<"openai" | "anthropic" | "gemini", ProviderAdapter>;

beforeAll(async () => {
  [openai, anthropic, gemini] = await Promise.all([
    startFakeOpenAI(),
    startFakeAnthropic(),
    startFakeGemini(),
  ]);
  adapters = {
    openai: createOpenAIAdapter("oai", providerConfig("openai", openai.url), "sk-test", fetch),
    anthropic: createAnthropicAdapter("anth", providerConfig("anthropic", anthropic.url), "sk-ant", fetch),
    gemini: createGeminiAdapter("gem", providerConfig("gemini", gemini.url), "AIza", fetch),
  };
});
afterAll(async () => {
  await Promise.all([openai?.close(), anthropic?.close(), gemini?.close()]);
});
beforeEach(() => {
  openai.reset();
  anthropic.reset();
  gemini.reset();
});

/**
 * The same scenarios scripted in each fake's own terms. `cutAfter` names the chunk count at which
 * each fake's stream_cut leaves exactly the first two text pieces delivered (OpenAI's first chunk
 * is the role; Anthropic's are message_start, content_block_start and a ping).
 */
const providers = [
  {
    name: "openai" as const,
    ok: (model: string, chunkDelayMs = 0) =>
      openai.script(model, { kind: "ok", content: CONTENT, chunkDelayMs }),
    usage: (model: string) =>
      openai.script(model, {
        kind: "ok",
        content: CONTENT,
        usage: { prompt_tokens: 120, completion_tokens: 9, cached_tokens: 64, reasoning_tokens: 5 },
      }),
    tools: (model: string) =>
      openai.script(model, {
        kind: "ok",
        toolCalls: [
          { id: "call_1", name: "weather", arguments: ARGUMENTS },
          { id: "call_2", name: "weather", arguments: '{"city": "Oslo"}' },
        ],
      }),
    cut: (model: string) => openai.script(model, { kind: "stream_cut", afterChunks: 3, content: CONTENT }),
    limited: (model: string) => openai.script(model, { kind: "rate_limited", retryAfterSeconds: 3 }),
    retryAfterMs: 3000,
    calls: (model: string) => openai.callsFor(model),
  },
  {
    name: "anthropic" as const,
    ok: (model: string, chunkDelayMs = 0) =>
      anthropic.script(model, { kind: "ok", content: CONTENT, chunkDelayMs }),
    usage: (model: string) =>
      anthropic.script(model, {
        kind: "ok",
        content: CONTENT,
        usage: { input_tokens: 120, output_tokens: 9, cache_read_input_tokens: 64 },
      }),
    tools: (model: string) =>
      anthropic.script(model, {
        kind: "ok",
        toolCalls: [
          { id: "toolu_1", name: "weather", arguments: ARGUMENTS },
          { id: "toolu_2", name: "weather", arguments: '{"city": "Oslo"}' },
        ],
      }),
    cut: (model: string) => anthropic.script(model, { kind: "stream_cut", afterChunks: 5, content: CONTENT }),
    limited: (model: string) => anthropic.script(model, { kind: "rate_limited", retryAfterSeconds: 2 }),
    retryAfterMs: 2000,
    calls: (model: string) => anthropic.callsFor(model),
  },
  {
    name: "gemini" as const,
    ok: (model: string, chunkDelayMs = 0) =>
      gemini.script(model, { kind: "ok", content: CONTENT, chunkDelayMs }),
    usage: (model: string) =>
      gemini.script(model, {
        kind: "ok",
        content: CONTENT,
        usage: {
          promptTokenCount: 120,
          candidatesTokenCount: 9,
          cachedContentTokenCount: 64,
          thoughtsTokenCount: 5,
        },
      }),
    tools: (model: string) =>
      gemini.script(model, {
        kind: "ok",
        toolCalls: [
          { name: "weather", arguments: ARGUMENTS },
          { name: "weather", arguments: '{"city": "Oslo"}' },
        ],
      }),
    cut: (model: string) => gemini.script(model, { kind: "stream_cut", afterChunks: 2, content: CONTENT }),
    limited: (model: string) => gemini.script(model, { kind: "rate_limited", retryAfterSeconds: 17 }),
    retryAfterMs: 17_000,
    calls: (model: string) => gemini.callsFor(model),
  },
];

describe.each(providers)("$name adapter streaming", (provider) => {
  const adapter = () => adapters[provider.name];

  it("forwards content deltas as they arrive and resolves with the assembled completion", async () => {
    provider.ok("m-ok", 25);
    const sink = recordingSink();
    const completion = await adapter().stream(callFor("m-ok"), sink);
    const resolvedAt = Date.now();

    expect(sink.contentPieces()).toEqual(PIECES);
    expect(sink.content()).toBe(CONTENT);
    expect(completion).toMatchObject({ content: CONTENT, toolCalls: [], finishReason: "stop" });
    expect(completion.upstreamId).toEqual(expect.any(String));
    expect(completion.usage.promptTokens).toBeGreaterThan(0);
    expect(completion.usage.completionTokens).toBeGreaterThan(0);
    // Streamed, not buffered: the first piece came well before the last chunk did.
    expect(resolvedAt - (sink.deltas[0]?.at ?? resolvedAt)).toBeGreaterThanOrEqual(25 * (PIECES.length - 2));
    const [request] = provider.calls("m-ok");
    if (provider.name === "gemini") expect(request?.path).toMatch(/:streamGenerateContent$/);
    else expect(request?.body.stream).toBe(true);
    if (provider.name === "openai") expect(request?.body.stream_options).toEqual({ include_usage: true });
  });

  it("reports usage from the stream, cached and reasoning tokens included where the provider sends them", async () => {
    provider.usage("m-usage");
    const completion = await adapter().stream(callFor("m-usage"), recordingSink());
    expect(completion.usage).toEqual({
      // Anthropic's input_tokens leaves out cache reads; the AI SDK's total (and so ours) adds them.
      promptTokens: provider.name === "anthropic" ? 184 : 120,
      completionTokens: provider.name === "gemini" ? 14 : 9,
      cachedTokens: 64,
      ...(provider.name === "anthropic" ? {} : { reasoningTokens: 5 }),
    });
  });

  it("streams tool calls: argument deltas add up to each call's final arguments", async () => {
    provider.tools("m-tools");
    const sink = recordingSink();
    const completion = await adapter().stream(
      callFor("m-tools", { tools: TOOLS, tool_choice: "required" }),
      sink,
    );

    expect(completion.finishReason).toBe("tool_calls");
    expect(completion.content).toBeNull();
    expect(completion.toolCalls.map((call) => call.function.name)).toEqual(["weather", "weather"]);
    expect(completion.toolCalls.map((call) => JSON.parse(call.function.arguments))).toEqual([
      JSON.parse(ARGUMENTS),
      { city: "Oslo" },
    ]);
    const streamed = sink.toolCalls();
    expect(streamed).toHaveLength(2);
    streamed.forEach((call, index) => {
      expect(call.id).toBe(completion.toolCalls[index]?.id);
      expect(call.name).toBe("weather");
      expect(call.arguments).toBe(completion.toolCalls[index]?.function.arguments);
    });
    // The first call's arguments came in several fragments (Gemini sends each call whole).
    const fragments = sink.deltas.filter(
      (delta) => delta.toolCalls?.[0]?.index === 0 && delta.toolCalls[0].arguments,
    );
    expect(fragments.length).toBeGreaterThan(provider.name === "gemini" ? 0 : 1);
  });

  it("a connection cut mid-stream is network_error, after the pieces that did arrive", async () => {
    provider.cut("m-cut");
    const sink = recordingSink();
    const error = await failure(adapter().stream(callFor("m-cut"), sink));
    expect(error.reason).toBe("network_error");
    expect(error.isRetryable).toBe(true);
    expect(sink.contentPieces()).toEqual(PIECES.slice(0, 2));
  });

  it("a 429 before the stream is rate_limited with the provider's wait", async () => {
    provider.limited("m-429");
    const sink = recordingSink();
    const error = await failure(adapter().stream(callFor("m-429"), sink));
    expect(error).toMatchObject({
      reason: "rate_limited",
      httpStatus: 429,
      retryAfterMs: provider.retryAfterMs,
    });
    expect(sink.deltas).toEqual([]);
  });

  it("an abort mid-stream rejects with the signal's reason, promptly", async () => {
    provider.ok("m-abort", 100);
    const controller = new AbortController();
    const reason = new Error("hop cancelled");
    const sink = recordingSink(() => controller.abort(reason));
    const startedAt = Date.now();
    const error = await adapter()
      .stream(callFor("m-abort", {}, controller.signal), sink)
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBe(reason);
    expect(Date.now() - startedAt).toBeLessThan(100 * (PIECES.length - 2));
    expect(sink.contentPieces()).toEqual(PIECES.slice(0, 1));
  });
});

describe("mid-stream error events through the AI SDK", () => {
  it("Anthropic overloaded_error mid-stream is server_error", async () => {
    anthropic.script("m-overloaded", { kind: "stream_error", afterChunks: 5, content: CONTENT });
    const sink = recordingSink();
    const error = await failure(adapters.anthropic.stream(callFor("m-overloaded"), sink));
    expect(error).toMatchObject({ reason: "server_error", httpStatus: undefined });
    expect(error.message).toMatch(/mid-stream.*Overloaded/);
    expect(sink.contentPieces()).toEqual(PIECES.slice(0, 2));
  });

  it("Anthropic rate_limit_error mid-stream is rate_limited", async () => {
    const rateLimit = anthropicError(
      "rate_limit_error",
      "Number of request tokens has exceeded your rate limit",
    );
    anthropic.script("m-rl", { kind: "stream_error", afterChunks: 4, error: rateLimit, content: CONTENT });
    const error = await failure(adapters.anthropic.stream(callFor("m-rl"), recordingSink()));
    expect(error.reason).toBe("rate_limited");
  });

  it("Anthropic error as the very first event (thrown by doStream itself) is classified the same way", async () => {
    anthropic.script("m-first", {
      kind: "stream_error",
      afterChunks: 0,
      error: anthropicError("api_error", "Internal"),
    });
    const error = await failure(adapters.anthropic.stream(callFor("m-first"), recordingSink()));
    expect(error).toMatchObject({ reason: "server_error", httpStatus: undefined });
    expect(error.message).toMatch(/mid-stream.*Internal/);
  });

  it("Gemini's error chunk mid-stream (503 UNAVAILABLE) is server_error", async () => {
    gemini.script("m-unavailable", { kind: "stream_error", afterChunks: 2, status: 503, content: CONTENT });
    const sink = recordingSink();
    const error = await failure(adapters.gemini.stream(callFor("m-unavailable"), sink));
    expect(error).toMatchObject({ reason: "server_error", httpStatus: undefined });
    expect(error.message).toMatch(/UNAVAILABLE: The model is overloaded/);
    expect(sink.contentPieces()).toEqual(PIECES.slice(0, 2));
  });

  it("Gemini's error chunk before any text (500 INTERNAL) is server_error", async () => {
    gemini.script("m-internal", { kind: "stream_error", afterChunks: 0, status: 500 });
    const error = await failure(adapters.gemini.stream(callFor("m-internal"), recordingSink()));
    expect(error.reason).toBe("server_error");
  });
});

/**
 * What the fakes do not script: OpenAI's error chunk, a malformed chunk, a RESOURCE_EXHAUSTED
 * chunk from Gemini and a stream that ends cleanly without a finish, from a raw SSE server.
 */
describe("raw event streams", () => {
  let server: FakeHttpServer;
  let events: string[] = [];
  let adapter: { openai: ProviderAdapter; gemini: ProviderAdapter };

  beforeAll(async () => {
    server = await startFakeHttpServer(async (context: FakeRequestContext) => {
      const stream = openEventStream(context.response);
      for (const event of events) {
        await stream.raw(event);
        await sleep(5, context.signal);
      }
      stream.end();
    });
    adapter = {
      openai: createOpenAIAdapter("raw-oai", providerConfig("openai", `${server.origin}/v1`), "k", fetch),
      gemini: createGeminiAdapter("raw-gem", providerConfig("gemini", `${server.origin}/v1beta`), "k", fetch),
    };
  });
  afterAll(async () => {
    await server?.close();
  });

  const chunk = (delta: object, finish: string | null = null) =>
    `data: ${JSON.stringify({
      id: "chatcmpl-raw",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta, finish_reason: finish }],
    })}\n\n`;
  const openAIErrorChunk = (error: object) => `data: ${JSON.stringify({ error })}\n\n`;

  it("OpenAI's error chunk after output is server_error, after the pieces that did arrive", async () => {
    events = [
      chunk({ role: "assistant", content: "" }),
      chunk({ content: "Hello" }),
      chunk({ content: " world" }),
      openAIErrorChunk({
        message: "The server had an error while processing your request. Sorry about that!",
        type: "server_error",
        param: null,
        code: null,
      }),
    ];
    const sink = recordingSink();
    const error = await failure(adapter.openai.stream(callFor("m"), sink));
    expect(error).toMatchObject({ reason: "server_error", httpStatus: undefined });
    expect(error.message).toMatch(/mid-stream.*Sorry about that/);
    expect(sink.contentPieces()).toEqual(["Hello", " world"]);
  });

  it("OpenAI's error chunk before output (thrown by doStream itself) is classified: rate_limit_exceeded → rate_limited", async () => {
    events = [
      chunk({ role: "assistant", content: "" }),
      openAIErrorChunk({
        message: "Rate limit reached",
        type: "tokens",
        param: null,
        code: "rate_limit_exceeded",
      }),
    ];
    const error = await failure(adapter.openai.stream(callFor("m"), recordingSink()));
    expect(error).toMatchObject({ reason: "rate_limited", httpStatus: undefined });
  });

  it("a malformed chunk is invalid_response", async () => {
    events = [
      chunk({ role: "assistant", content: "" }),
      chunk({ content: "Hi" }),
      'data: {"choices":[{"delta":\n\n',
    ];
    const error = await failure(adapter.openai.stream(callFor("m"), recordingSink()));
    expect(error.reason).toBe("invalid_response");
  });

  it("a stream that ends cleanly without a finish reason is network_error (truncated)", async () => {
    events = [chunk({ role: "assistant", content: "" }), chunk({ content: "Hi" }), "data: [DONE]\n\n"];
    const sink = recordingSink();
    const error = await failure(adapter.openai.stream(callFor("m"), sink));
    expect(error.reason).toBe("network_error");
    expect(sink.content()).toBe("Hi");
  });

  it("a body with no stream events at all is invalid_response", async () => {
    events = ['{"id":"chatcmpl-x","object":"chat.completion","choices":[]}'];
    const error = await failure(adapter.openai.stream(callFor("m"), recordingSink()));
    expect(error.reason).toBe("invalid_response");
  });

  it("Gemini's RESOURCE_EXHAUSTED chunk mid-stream is rate_limited with its retryDelay", async () => {
    const text = (value: string) =>
      `data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text: value }], role: "model" }, index: 0 }] })}\r\n\r\n`;
    const exhausted = {
      error: {
        code: 429,
        message: "Resource has been exhausted (e.g. check quota).",
        status: "RESOURCE_EXHAUSTED",
        details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "7s" }],
      },
    };
    events = [text("Hello"), `data: ${JSON.stringify(exhausted)}\r\n\r\n`];
    const sink = recordingSink();
    const error = await failure(adapter.gemini.stream(callFor("m"), sink));
    expect(error).toMatchObject({ reason: "rate_limited", retryAfterMs: 7000, httpStatus: undefined });
    expect(sink.content()).toBe("Hello");
  });
});

describe("stream_options towards a provider that refuses it (Mistral: a 422 extra_forbidden)", () => {
  it("is asked for by default, left out for Mistral's hosts or with stream_options: drop", () => {
    expect(asksStreamUsage({})).toBe(true);
    expect(asksStreamUsage({ base_url: "https://api.deepseek.com" })).toBe(true);
    expect(asksStreamUsage({ base_url: "https://api.mistral.ai/v1" })).toBe(false);
    expect(asksStreamUsage({ base_url: "https://codestral.mistral.ai/v1" })).toBe(false);
    expect(asksStreamUsage({ base_url: "https://api.mistral.ai/v1", stream_options: "send" })).toBe(true);
    expect(asksStreamUsage({ base_url: "http://127.0.0.1:8000/v1", stream_options: "drop" })).toBe(false);
  });

  it("is not in the body of a stream with stream_options: drop, lean client or SDK alike", async () => {
    const http = createProviderHttp({ connections: 2 });
    const provider = { ...providerConfig("openai", openai.url), stream_options: "drop" } as ProviderConfig;
    try {
      for (const adapter of [
        createOpenAIAdapter("strict", provider, "sk-test", fetch, undefined, { dispatcher: http.dispatcher }),
        createOpenAIAdapter("strict", provider, "sk-test", fetch),
      ]) {
        openai.reset();
        openai.script("m-strict", { kind: "ok", content: CONTENT });
        const completion = await adapter.stream(callFor("m-strict", { stream: true }), recordingSink());
        expect(completion.content).toBe(CONTENT);
        const body = openai.callsFor("m-strict")[0]?.body;
        expect(body).toMatchObject({ stream: true });
        expect(body).not.toHaveProperty("stream_options");
      }
    } finally {
      await http.dispatcher.close();
    }
  });
});

describe('a tool-call answer whose role chunk carries content: "" (vLLM, Ollama and others send it)', () => {
  it("has content null, streamed or not, lean client or SDK alike (as OpenAI's message does)", async () => {
    const http = createProviderHttp({ connections: 2 });
    const provider = providerConfig("openai", openai.url);
    try {
      for (const adapter of [
        createOpenAIAdapter("empty", provider, "sk-test", fetch, undefined, { dispatcher: http.dispatcher }),
        createOpenAIAdapter("empty", provider, "sk-test", fetch),
      ]) {
        for (const stream of [true, false]) {
          openai.reset();
          openai.script("m-empty", {
            kind: "ok",
            content: "",
            toolCalls: [{ id: "call_1", name: "weather", arguments: ARGUMENTS }],
          });
          const call = callFor("m-empty", { tools: TOOLS, stream });
          const completion = stream
            ? await adapter.stream(call, recordingSink())
            : await adapter.generate(call);
          expect(completion.finishReason).toBe("tool_calls");
          expect(completion.toolCalls).toHaveLength(1);
          expect(completion.content).toBeNull();
        }
      }
    } finally {
      await http.dispatcher.close();
    }
  });
});
