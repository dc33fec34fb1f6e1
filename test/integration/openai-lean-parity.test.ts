import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import type { ChatRequest, ModelConfig, ProviderConfig } from "@cascade/shared";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createProviderHttp, MAX_PROVIDER_RESPONSE_BYTES } from "../../packages/engine/src/providers/http.js";
import { createOpenAIAdapter } from "../../packages/engine/src/providers/openai.js";
import { ProviderError } from "../../packages/engine/src/providers/provider-error.js";
import {
  unwatchResponse,
  watchedFetch,
  watchResponse,
} from "../../packages/engine/src/providers/response-watch.js";
import type { ProviderAdapter, ProviderCall } from "../../packages/engine/src/providers/types.js";
import {
  type FakeBehaviour,
  type FakeOpenAI,
  openAIErrors,
  startFakeOpenAI,
} from "../support/fake-openai.js";
import {
  type FakeHttpServer,
  type FakeRequestContext,
  hang,
  startFakeHttpServer,
} from "../support/fake-upstream-common.js";

/**
 * The lean OpenAI client (non-streamed calls on undici's dispatcher, ADR 0022) against the AI SDK
 * path it replaces (`doGenerate` over fetch): the same cases through both, against real local
 * HTTP servers speaking OpenAI's wire format (the fake, and a raw server for bodies the fake never
 * sends), must give the same completion or the same ProviderError (reason, message, status,
 * Retry-After, provider-specific flag), and send the same request.
 */

const KEY = "sk-test-parity";
const EXTRA_HEADERS = { "X-Title": "parity" };

function callFor(
  upstreamName: string,
  request: Partial<ChatRequest> = {},
  signal?: AbortSignal,
): ProviderCall {
  return {
    request: {
      messages: [{ role: "user", content: "What is 2+2?" }],
      max_tokens: 50,
      ...request,
    } as ChatRequest,
    modelId: upstreamName,
    model: { provider: "p", name: upstreamName } as ModelConfig,
    upstreamName,
    signal: signal ?? AbortSignal.timeout(10_000),
  };
}

/** What a call came to, in comparable form (random ids the servers make are masked). */
async function outcome(adapter: ProviderAdapter, call: ProviderCall) {
  try {
    const completion = await adapter.generate(call);
    return {
      completion: {
        ...completion,
        upstreamId: completion.upstreamId?.replace(/^chatcmpl-.+$/, "chatcmpl-X"),
      },
    };
  } catch (error) {
    if (!(error instanceof ProviderError)) return { thrown: error };
    return {
      error: {
        reason: error.reason,
        message: error.message.replace(/req_[0-9a-f]+/g, "req_X"),
        httpStatus: error.httpStatus,
        // An HTTP-date Retry-After is read against the clock: whole seconds beyond a minute.
        retryAfterMs:
          error.retryAfterMs !== undefined && error.retryAfterMs > 60_000
            ? Math.round(error.retryAfterMs / 1000) * 1000
            : error.retryAfterMs,
        providerSpecific: error.providerSpecific,
        usage: error.usage,
        isRetryable: error.isRetryable,
      },
    };
  }
}

function adapters(baseUrl: string) {
  const provider = { type: "openai", base_url: baseUrl } as ProviderConfig;
  const http = createProviderHttp({ connections: 8 });
  const fetch = watchedFetch(http.fetch);
  return {
    sdk: createOpenAIAdapter("p", provider, KEY, fetch, EXTRA_HEADERS),
    lean: createOpenAIAdapter("p", provider, KEY, fetch, EXTRA_HEADERS, { dispatcher: http.dispatcher }),
  };
}

describe("lean OpenAI client against the AI SDK path, on the fake OpenAI", () => {
  let fake: FakeOpenAI;
  let sdk: ProviderAdapter;
  let lean: ProviderAdapter;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: KEY });
    ({ sdk, lean } = adapters(fake.url));
  });
  afterAll(async () => {
    await fake?.close();
  });
  beforeEach(() => fake.reset());

  /** Runs the same behaviour through both paths and returns both outcomes and both requests. */
  async function both(behaviour: FakeBehaviour, request: Partial<ChatRequest> = {}, model = "gpt-4o-mini") {
    fake.script(model, behaviour, behaviour);
    const viaSdk = await outcome(sdk, callFor(model, request));
    const viaLean = await outcome(lean, callFor(model, request));
    const [sdkCall, leanCall] = fake.callsFor(model);
    return { viaSdk, viaLean, sdkCall, leanCall };
  }

  const behaviours: Array<[string, FakeBehaviour]> = [
    [
      "a plain answer with usage",
      { kind: "ok", content: "4", usage: { prompt_tokens: 12, completion_tokens: 3 } },
    ],
    [
      "cached and reasoning tokens",
      {
        kind: "ok",
        content: "4",
        usage: { prompt_tokens: 12, completion_tokens: 30, cached_tokens: 8, reasoning_tokens: 20 },
      },
    ],
    [
      "tool calls",
      {
        kind: "ok",
        toolCalls: [
          { id: "call_1", name: "add", arguments: '{"a":2,"b":2}' },
          { id: "call_2", name: "mul", arguments: "{}" },
        ],
      },
    ],
    [
      "text and a tool call",
      { kind: "ok", content: "calling", toolCalls: [{ id: "c", name: "f", arguments: "{}" }] },
    ],
    ["finish_reason length", { kind: "ok", content: "4 and", finishReason: "length" }],
    ["finish_reason content_filter", { kind: "ok", content: "", finishReason: "content_filter" }],
    ["finish_reason null", { kind: "no_finish", content: "4" }],
    [
      "a protobuf enum's unset finish reason",
      { kind: "ok", content: "4", finishReason: "FINISH_REASON_UNSPECIFIED" },
    ],
    ["429 with retry-after", { kind: "rate_limited", retryAfterSeconds: 7 }],
    ["429 with retry-after-ms", { kind: "rate_limited", retryAfterMs: 1500 }],
    ["500", { kind: "server_error" }],
    ["503", { kind: "server_error", status: 503 }],
    ["context length", { kind: "context_length" }],
    ["401", { kind: "status", status: 401, body: openAIErrors.invalidApiKey("sk-wrong-key-000") }],
    [
      "400 unsupported_parameter",
      {
        kind: "status",
        status: 400,
        body: {
          error: {
            message: "Unsupported parameter: 'seed'",
            type: "invalid_request_error",
            param: "seed",
            code: "unsupported_parameter",
          },
        },
      },
    ],
    [
      "403 moderation (OpenRouter)",
      {
        kind: "status",
        status: 403,
        body: { error: { message: "Your input was flagged for violence", code: 403 } },
      },
    ],
    [
      "422 with an object for a message (Mistral)",
      {
        kind: "status",
        status: 422,
        body: {
          object: "error",
          message: { detail: [{ msg: "Extra inputs are not permitted" }] },
          type: "invalid_request_error",
        },
      },
    ],
    [
      "400 in vLLM's envelope",
      {
        kind: "status",
        status: 400,
        body: { object: "error", message: "This model's maximum context length is 4096 tokens", code: 400 },
      },
    ],
    ["402", { kind: "status", status: 402, body: { error: { message: "Insufficient credits" } } }],
    [
      "404",
      {
        kind: "status",
        status: 404,
        body: { error: { message: "model not found", code: "model_not_found" } },
      },
    ],
    ["408", { kind: "status", status: 408, body: "" }],
    ["413 with a text body", { kind: "status", status: 413, body: "Request Entity Too Large" }],
    ["502 with an HTML page", { kind: "status", status: 502, body: "<html><body>Bad Gateway</body></html>" }],
    ["500 with an empty body", { kind: "status", status: 500, body: "" }],
    [
      "429 whose error type is a number, code at the top",
      {
        kind: "status",
        status: 429,
        body: { error: { message: "slow down", type: 429 }, code: "rate_limit_exceeded" },
        headers: { "retry-after": "3" },
      },
    ],
    ["a truncated 200 body", { kind: "malformed" }],
    ["a connection reset before the answer", { kind: "reset" }],
    ["a 200 body cut mid-flight", { kind: "stream_cut", afterChunks: 0 }],
  ];

  for (const [name, behaviour] of behaviours) {
    it(`${name}: same outcome`, async () => {
      const { viaSdk, viaLean } = await both(behaviour);
      expect(viaLean).toEqual(viaSdk);
      expect(viaLean.completion ?? viaLean.error).toBeDefined();
    });
  }

  it("sends the same body and headers, accept included (but for fetch's own: accept-encoding/-language, sec-fetch-mode, user-agent's tail)", async () => {
    const { sdkCall, leanCall } = await both({ kind: "ok" });
    expect(leanCall?.body).toEqual(sdkCall?.body);
    expect(leanCall?.path).toBe("/v1/chat/completions");
    const own = (headers: Record<string, unknown>) => {
      const { accept, "accept-encoding": _e, "accept-language": _l, "sec-fetch-mode": _m, ...rest } = headers;
      const { "user-agent": agent, connection: _c, host: _h, ...kept } = rest;
      return { kept, agent: String(agent).split(" ")[0], accept };
    };
    expect(own(leanCall?.headers ?? {}).kept).toEqual(own(sdkCall?.headers ?? {}).kept);
    expect(own(leanCall?.headers ?? {}).agent).toBe(own(sdkCall?.headers ?? {}).agent);
    // The lean path really is not fetch (which adds sec-fetch-mode and asks for compression).
    expect(sdkCall?.headers["sec-fetch-mode"]).toBe("cors");
    expect(leanCall?.headers["sec-fetch-mode"]).toBeUndefined();
    expect(leanCall?.headers["accept-encoding"]).toBeUndefined();
    expect(leanCall?.headers.accept).toBe(sdkCall?.headers.accept);
    expect(leanCall?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(leanCall?.headers["x-title"]).toBe("parity");
  });

  const requests: Array<[string, Partial<ChatRequest>, string?]> = [
    [
      "system, developer, images, tool history, stop, seed, temperature",
      {
        messages: [
          { role: "system", content: "Be brief." },
          { role: "developer", content: [{ type: "text", text: "Really brief." }] },
          {
            role: "user",
            content: [
              { type: "text", text: "What is this?" },
              { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
              { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=", detail: "high" } },
            ],
          },
          {
            role: "assistant",
            content: null,
            tool_calls: [
              { id: "call_9", type: "function", function: { name: "look", arguments: '{"x":1}' } },
            ],
          },
          { role: "tool", tool_call_id: "call_9", content: "a cat" },
        ],
        stop: "END",
        seed: 7,
        temperature: 0.2,
        top_p: 0.9,
      } as Partial<ChatRequest>,
    ],
    [
      "tools, tool_choice, parallel_tool_calls and user (provider options)",
      {
        tools: [
          {
            type: "function",
            function: {
              name: "add",
              description: "adds",
              parameters: { type: "object", properties: { a: { type: "number" } } },
            },
          },
        ],
        tool_choice: { type: "function", function: { name: "add" } },
        parallel_tool_calls: false,
        user: "end-user-7",
      } as Partial<ChatRequest>,
    ],
    [
      "json_schema",
      {
        response_format: {
          type: "json_schema",
          json_schema: { name: "answer", schema: { type: "object", properties: { a: { type: "string" } } } },
        },
      } as Partial<ChatRequest>,
    ],
    ["json_object", { response_format: { type: "json_object" } } as Partial<ChatRequest>],
    [
      "a reasoning model (developer role, max_completion_tokens)",
      {
        messages: [
          { role: "system", content: "x" },
          { role: "user", content: "y" },
        ],
        temperature: 1,
      } as Partial<ChatRequest>,
      "o3-mini",
    ],
  ];

  for (const [name, request, model] of requests) {
    it(`request: ${name}: same body on the wire, same answer`, async () => {
      const { viaSdk, viaLean, sdkCall, leanCall } = await both({ kind: "ok" }, request, model);
      expect(leanCall?.body).toEqual(sdkCall?.body);
      expect(viaLean).toEqual(viaSdk);
    });
  }

  it("a call aborted while the upstream is silent rejects with the signal's reason, on both paths", async () => {
    for (const behaviour of [
      { kind: "hang" },
      { kind: "silent" },
      { kind: "stall", afterChunks: 0 },
    ] as FakeBehaviour[]) {
      for (const adapter of [sdk, lean]) {
        fake.script("gpt-4o-mini", behaviour);
        const controller = new AbortController();
        const reason = new ProviderError("timeout", "no answer within timeout_ms 150");
        setTimeout(() => controller.abort(reason), 150);
        await expect(adapter.generate(callFor("gpt-4o-mini", {}, controller.signal))).rejects.toBe(reason);
      }
    }
  });

  it("a call whose signal is already aborted makes no request", async () => {
    for (const adapter of [sdk, lean]) {
      const reason = new Error("cancelled");
      await expect(adapter.generate(callFor("gpt-4o-mini", {}, AbortSignal.abort(reason)))).rejects.toBe(
        reason,
      );
    }
    expect(fake.calls).toHaveLength(0);
  });

  it("reports the first byte of the answer to a watcher (first_token_timeout_ms), once", async () => {
    for (const adapter of [sdk, lean]) {
      fake.script("gpt-4o-mini", { kind: "ok", delayMs: 50 });
      const controller = new AbortController();
      let reports = 0;
      watchResponse(controller.signal, () => {
        reports += 1;
      });
      await adapter.generate(callFor("gpt-4o-mini", {}, controller.signal));
      unwatchResponse(controller.signal);
      expect(reports).toBe(1);
    }
  });
});

describe("lean OpenAI client against the AI SDK path, on bodies the fake never sends", () => {
  let server: FakeHttpServer;
  let answer: (context: FakeRequestContext) => void | Promise<void>;
  let sdk: ProviderAdapter;
  let lean: ProviderAdapter;

  beforeAll(async () => {
    server = await startFakeHttpServer(async (context) => answer(context));
    ({ sdk, lean } = adapters(`${server.origin}/v1`));
  });
  afterAll(async () => {
    await server?.close();
  });

  const send = (status: number, body: string | Buffer, headers: Record<string, string> = {}) => {
    answer = ({ response }) => {
      response.writeHead(status, {
        "content-type": "application/json",
        ...headers,
        "content-length": String(Buffer.byteLength(body)),
      });
      response.end(body);
    };
  };
  const completion = (message: object, extra: object = {}, choice: object = {}) =>
    JSON.stringify({
      id: "chatcmpl-raw",
      object: "chat.completion",
      created: 1_767_225_600,
      model: "m",
      choices: [
        {
          index: 0,
          message: { role: "assistant", ...message },
          logprobs: null,
          finish_reason: "stop",
          ...choice,
        },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
      ...extra,
    });

  async function same() {
    const viaSdk = await outcome(sdk, callFor("m"));
    const viaLean = await outcome(lean, callFor("m"));
    expect(viaLean).toEqual(viaSdk);
    return viaLean;
  }

  const bodies: Array<[string, () => void]> = [
    ["an empty object", () => send(200, "{}")],
    ["no choices", () => send(200, completion({ content: "x" }, { choices: [] }))],
    ["a role other than assistant", () => send(200, completion({ role: "tool", content: "x" }))],
    ["a refusal", () => send(200, completion({ content: null, refusal: "I can't help with that." }))],
    ["content and a refusal", () => send(200, completion({ content: "Partly", refusal: " no." }))],
    ["an audio transcript", () => send(200, completion({ content: "", audio: { transcript: "spoken" } }))],
    ["no usage", () => send(200, completion({ content: "x" }, { usage: null }))],
    [
      "usage with nulls",
      () =>
        send(
          200,
          completion(
            { content: "x" },
            { usage: { prompt_tokens: null, completion_tokens: 3, prompt_tokens_details: null } },
          ),
        ),
    ],
    [
      "a string where a number belongs",
      () => send(200, completion({ content: "x" }, { created: "yesterday" })),
    ],
    [
      "an infinite number",
      () => send(200, completion({ content: "x" }).replace('"created":1767225600', '"created":1e999')),
    ],
    [
      "malformed logprobs",
      () => send(200, completion({ content: "x" }, {}, { logprobs: { content: [{ token: "x" }] } })),
    ],
    [
      "good logprobs",
      () =>
        send(
          200,
          completion(
            { content: "x" },
            {},
            { logprobs: { content: [{ token: "x", logprob: -0.1, top_logprobs: [] }], refusal: null } },
          ),
        ),
    ],
    [
      "url citations",
      () =>
        send(
          200,
          completion({
            content: "x",
            annotations: [
              {
                type: "url_citation",
                url_citation: { start_index: 0, end_index: 1, url: "https://a.b", title: "t" },
              },
            ],
          }),
        ),
    ],
    [
      "a bad citation",
      () => send(200, completion({ content: "x", annotations: [{ type: "file_citation" }] })),
    ],
    [
      "a tool call of another type",
      () =>
        send(
          200,
          completion({
            content: null,
            tool_calls: [{ id: "a", type: "custom", function: { name: "f", arguments: "{}" } }],
          }),
        ),
    ],
    ["an unknown finish reason", () => send(200, completion({ content: "x" }, {}, { finish_reason: "eos" }))],
    [
      "extra fields everywhere",
      () =>
        send(
          200,
          completion(
            { content: "x", extra: 1 },
            { provider: "z", usage: { prompt_tokens: 1, completion_tokens: 1, cost: 0.1 } },
          ),
        ),
    ],
    [
      "a byte-order mark",
      () =>
        send(
          200,
          Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(completion({ content: "bom" }))]),
        ),
    ],
    [
      "a __proto__ key",
      () => send(200, completion({ content: "x" }, { __proto__x: 1 }).replace('"__proto__x"', '"__proto__"')),
    ],
    [
      "a gzip-encoded body",
      () => send(200, gzipSync(completion({ content: "zipped" })), { "content-encoding": "gzip" }),
    ],
    [
      "a body gzipped, then brotli-encoded (two codings)",
      () =>
        send(200, brotliCompressSync(gzipSync(completion({ content: "twice" }))), {
          "content-encoding": "gzip, br",
        }),
    ],
    [
      "a deflate-encoded body, coding in capitals",
      () => send(200, deflateSync(completion({ content: "deflated" })), { "content-encoding": "DEFLATE" }),
    ],
    [
      "a raw deflate body (no zlib header) as deflate",
      () => send(200, deflateRawSync(completion({ content: "raw" })), { "content-encoding": "deflate" }),
    ],
    [
      "a 204 that lists six codings (no body: fetch counts none)",
      () => {
        answer = ({ response }) => {
          response.writeHead(204, { "content-encoding": "gzip, gzip, gzip, gzip, gzip, gzip" });
          response.end();
        };
      },
    ],
    [
      "a gzipped body that also lists identity (fetch then decodes nothing)",
      () => send(200, gzipSync(completion({ content: "zipped" })), { "content-encoding": "gzip, identity" }),
    ],
    [
      "a gzipped body cut short at the end",
      () => {
        const zipped = gzipSync(completion({ content: "cut" }));
        send(200, zipped.subarray(0, zipped.length - 8), { "content-encoding": "gzip" });
      },
    ],
    [
      "six content codings",
      () =>
        send(200, completion({ content: "x" }), {
          "content-encoding": "identity, identity, identity, identity, identity, identity",
        }),
    ],
    ["an HTML 200", () => send(200, "<html>hello</html>", { "content-type": "text/html" })],
    [
      "a chunked body in pieces",
      () => {
        answer = async ({ response }) => {
          const text = completion({ content: "chunked" });
          response.writeHead(200, { "content-type": "application/json" });
          response.write(text.slice(0, 40));
          await new Promise((resolve) => setTimeout(resolve, 20));
          response.end(text.slice(40));
        };
      },
    ],
    [
      "a 204",
      () => {
        answer = ({ response }) => {
          response.writeHead(204);
          response.end();
        };
      },
    ],
    ["a redirect", () => send(302, "", { location: "https://elsewhere.example/v1/chat/completions" })],
    [
      "a 500 whose numeric code is 503",
      () => send(500, JSON.stringify({ error: { message: "overloaded", code: 503 } })),
    ],
    [
      "an error body with a __proto__ key",
      () => send(400, '{"error":{"message":"bad","__proto__":{"x":1}}}'),
    ],
    [
      "a 429 with x-ratelimit headers only",
      () =>
        send(
          429,
          JSON.stringify({ error: { message: "tokens", type: "tokens", code: "rate_limit_exceeded" } }),
          { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s" },
        ),
    ],
    [
      'finish_reason "error" (OpenRouter): a server_error, billed as its usage says',
      () => send(200, completion({ content: "Hel" }, {}, { finish_reason: "error" })),
    ],
    [
      "a 503 with an HTTP-date retry-after far ahead",
      () => send(503, "", { "retry-after": "Wed, 21 Oct 2099 07:28:00 GMT" }),
    ],
  ];

  for (const [name, prepare] of bodies) {
    it(`${name}: same outcome`, async () => {
      prepare();
      const result = await same();
      expect(result.completion ?? result.error).toBeDefined();
    });
  }

  it(`an answer that runs past ${MAX_PROVIDER_RESPONSE_BYTES / 2 ** 20} MiB fails the call on both paths`, async () => {
    // undici's maxResponseSize counts the bytes read (a Content-Length alone does not trip it).
    const piece = Buffer.alloc(1024 * 1024, 0x20);
    answer = async ({ response }) => {
      response.writeHead(200, { "content-type": "application/json" });
      for (let sent = 0; sent <= MAX_PROVIDER_RESPONSE_BYTES && !response.destroyed; sent += piece.length) {
        if (!response.write(piece)) await new Promise((resolve) => response.once("drain", resolve));
      }
      response.end();
    };
    const sent = await same();
    // A body that could not be read to its end after a 200, as any broken body: the chain moves on.
    expect(sent.error).toMatchObject({ reason: "invalid_response", isRetryable: true });
  });

  it("a compression bomb is refused past the same size on both paths, not inflated whole", async () => {
    // 80 MiB of spaces gzip to ~80 KB: the wire cap never trips; the decoded bytes are counted.
    send(200, gzipSync(Buffer.alloc(80 * 1024 * 1024, 0x20)), { "content-encoding": "gzip" });
    const refused = await same();
    expect(refused.error).toMatchObject({
      reason: "invalid_response",
      message: "Failed to process successful response (HTTP 200)",
      isRetryable: true,
    });
  });

  it("a streamed compression bomb fails the stream past the same size on both paths (fetch's decoder counted too)", async () => {
    // 80 events of 1 MiB of content each, gzipped to ~80 KB: without a bound on what fetch
    // inflates, the stream would end as an 80 MiB answer.
    const event = `data: ${JSON.stringify({
      id: "chatcmpl-bomb",
      object: "chat.completion.chunk",
      created: 1_767_225_600,
      model: "m",
      choices: [{ index: 0, delta: { content: " ".repeat(1024 * 1024) }, finish_reason: null }],
    })}\n\n`;
    const done = `data: ${JSON.stringify({
      id: "chatcmpl-bomb",
      object: "chat.completion.chunk",
      created: 1_767_225_600,
      model: "m",
      choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
    })}\n\ndata: [DONE]\n\n`;
    send(200, gzipSync(Buffer.from(event.repeat(80) + done)), {
      "content-type": "text/event-stream",
      "content-encoding": "gzip",
    });
    // The SDK's stream, and the lean client's (ADR 0031).
    for (const adapter of [sdk, lean]) {
      let delivered = 0;
      // A long signal: inflating and parsing 64 MiB on a loaded machine must not end as a timeout.
      const streamed = adapter.stream(callFor("m", {}, AbortSignal.timeout(60_000)), {
        delta: (part) => {
          delivered += part.content?.length ?? 0;
        },
      });
      const error = await streamed.then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(ProviderError);
      expect((error as ProviderError).reason).toBe("network_error");
      expect(delivered).toBeLessThanOrEqual(MAX_PROVIDER_RESPONSE_BYTES);
    }
  });

  it("a tool call without an id gets a generated 16-character id on both paths", async () => {
    send(
      200,
      completion({
        content: null,
        tool_calls: [{ type: "function", function: { name: "f", arguments: "{}" } }],
      }),
    );
    for (const adapter of [sdk, lean]) {
      const result = await adapter.generate(callFor("m"));
      expect(result.toolCalls[0]?.id).toMatch(/^[0-9A-Za-z]{16}$/);
    }
  });

  it("a connection refused is the same network_error", async () => {
    const gone = await startFakeHttpServer(async () => {});
    await gone.close();
    const closed = adapters(`${gone.origin}/v1`);
    const viaSdk = await outcome(closed.sdk, callFor("m"));
    const viaLean = await outcome(closed.lean, callFor("m"));
    expect(viaLean).toEqual(viaSdk);
    expect(viaLean.error?.reason).toBe("network_error");
  });

  it("a port the Fetch standard blocks (9): fetch refuses it, the lean client connects; both network_error here", async () => {
    const blocked = adapters("http://127.0.0.1:9/v1");
    const viaSdk = await outcome(blocked.sdk, callFor("m"));
    const viaLean = await outcome(blocked.lean, callFor("m"));
    expect(viaSdk.error).toMatchObject({
      reason: "network_error",
      message: "Cannot connect to API: bad port",
    });
    expect(viaLean.error).toMatchObject({
      reason: "network_error",
      message: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it("an abort while waiting for a connection rejects at once", async () => {
    const single = (() => {
      const provider = { type: "openai", base_url: `${server.origin}/v1` } as ProviderConfig;
      const http = createProviderHttp({ connections: 1 });
      return createOpenAIAdapter("p", provider, KEY, http.fetch, undefined, { dispatcher: http.dispatcher });
    })();
    answer = (context) => hang(context.signal);
    const first = new AbortController();
    const holding = single.generate(callFor("m", {}, first.signal)).catch((error: unknown) => error);
    const second = new AbortController();
    const queued = single.generate(callFor("m", {}, second.signal));
    const reason = new Error("job cancelled");
    setTimeout(() => second.abort(reason), 50);
    const started = performance.now();
    await expect(queued).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1000);
    first.abort(new Error("done"));
    await holding;
  });
});
