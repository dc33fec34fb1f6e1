import { gzipSync } from "node:zlib";
import type { ChatRequest } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StreamParity, startStreamParity, streamCall, streamOutcome } from "../support/stream-parity.js";

/**
 * The lean client's streams (ADR 0031: one dispatch, eventsource-parser fed directly, a
 * hand-written chunk check, the SDK's own chunk mapping) against the AI SDK's `doStream` over
 * fetch that it replaces: the same SSE bodies, sent in awkward pieces by a real local server, must
 * give the same completion or the same ProviderError, the same deltas to the sink in the same
 * order, the same output heartbeats, and the same request on the wire.
 */

const KEY = "sk-test-stream-parity";

const callFor = streamCall;
const outcome = streamOutcome;

const chunk = (delta: object | null, extra: object = {}, choice: object = {}) =>
  JSON.stringify({
    id: "chatcmpl-s",
    object: "chat.completion.chunk",
    created: 1_767_225_600,
    model: "m",
    choices: [{ index: 0, delta, finish_reason: null, ...choice }],
    ...extra,
  });
const finish = (reason: string, extra: object = {}) => chunk({}, extra, { finish_reason: reason });
const usage = JSON.stringify({
  id: "chatcmpl-s",
  object: "chat.completion.chunk",
  created: 1_767_225_600,
  model: "m",
  choices: [],
  usage: {
    prompt_tokens: 9,
    completion_tokens: 4,
    total_tokens: 13,
    prompt_tokens_details: { cached_tokens: 2 },
  },
});
const sse = (...events: string[]) => events.map((data) => `data: ${data}\n\n`).join("");
const role = chunk({ role: "assistant", content: "" });

describe("lean OpenAI streams against the AI SDK's doStream", () => {
  let parity: StreamParity;
  let sdk: StreamParity["sdk"];
  let lean: StreamParity["lean"];
  let bodies: string[];

  beforeAll(async () => {
    parity = await startStreamParity(KEY);
    ({ sdk, lean, bodies } = parity);
  });
  afterAll(async () => {
    await parity?.close();
  });
  const answer = (handler: Parameters<StreamParity["answer"]>[0]) => parity.answer(handler);

  /** Sends `body` in pieces of `piece` bytes (a piece boundary may fall inside a character or a line). */
  const stream = (
    body: string | Buffer,
    options: { piece?: number; status?: number; headers?: object; cut?: boolean } = {},
  ) => {
    answer(async ({ response }) => {
      response.writeHead(options.status ?? 200, { "content-type": "text/event-stream", ...options.headers });
      const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
      const piece = options.piece ?? bytes.length;
      for (let at = 0; at < bytes.length; at += piece) {
        response.write(bytes.subarray(at, at + piece));
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (options.cut) response.socket?.destroy();
      else response.end();
    });
  };

  async function same(request: Partial<ChatRequest> = {}, options: { activityBeats?: "any" } = {}) {
    bodies.length = 0;
    const viaSdk = await outcome(sdk, callFor(request));
    const before = parity.fetches();
    const viaLean = await outcome(lean, callFor(request));
    if (options.activityBeats === "any" && viaSdk.heartbeats && viaLean.heartbeats) {
      // Which of a failed chunk's parts a web stream still hands over before erroring is timing:
      // the output beats (first token) must agree, the activity beats may not.
      expect(viaLean.heartbeats.filter(Boolean)).toEqual(viaSdk.heartbeats.filter(Boolean));
      viaLean.heartbeats = viaSdk.heartbeats;
    }
    // The lean path makes its call without fetch.
    expect(parity.fetches()).toBe(before);
    expect(viaLean).toEqual(viaSdk);
    expect(bodies[1]).toBe(bodies[0]);
    return viaLean;
  }

  const tool = (index: number, id: string | undefined, name: string | undefined, args: string) => ({
    index,
    ...(id ? { id, type: "function" } : {}),
    function: { ...(name ? { name } : {}), arguments: args },
  });

  const cases: Array<
    [string, () => void, (result: Awaited<ReturnType<typeof same>>) => void, { activityBeats?: "any" }?]
  > = [
    [
      "text with usage, in 7-byte pieces",
      () =>
        stream(
          sse(
            role,
            chunk({ content: "Héllo" }),
            chunk({ content: " wörld" }),
            finish("stop"),
            usage,
            "[DONE]",
          ),
          { piece: 7 },
        ),
      (result) => expect(result.completion).toMatchObject({ content: "Héllo wörld", finishReason: "stop" }),
    ],
    [
      "CRLF lines, comments, an event field, a multi-line data and a BOM",
      () =>
        stream(
          `\uFEFF: keep-alive\r\n\r\nevent: message\r\ndata: ${chunk({ content: "a" })}\r\n\r\ndata: ${finish("length")}\r\n\r\ndata: [DONE]\r\n\r\n`,
          { piece: 5 },
        ),
      (result) => expect(result.completion).toMatchObject({ content: "a", finishReason: "length" }),
    ],
    [
      "a refusal",
      () =>
        stream(
          sse(
            role,
            chunk({ refusal: "I can't" }),
            chunk({ refusal: " help." }),
            finish("stop"),
            usage,
            "[DONE]",
          ),
        ),
      (result) => expect(result.completion).toMatchObject({ refusal: "I can't help." }),
    ],
    [
      "parallel tool calls, arguments in pieces, one without an id",
      () =>
        stream(
          sse(
            role,
            chunk({ tool_calls: [tool(0, "call_a", "add", '{"a":')] }),
            chunk({ tool_calls: [tool(0, undefined, undefined, "1}")] }),
            chunk({ tool_calls: [{ index: 1, function: { name: "mul", arguments: '{"b":2}' } }] }),
            finish("tool_calls"),
            usage,
            "[DONE]",
          ),
          { piece: 11 },
        ),
      (result) => expect(result.completion?.toolCalls).toHaveLength(2),
    ],
    [
      "content_filter",
      () => stream(sse(role, chunk({ content: "x" }), finish("content_filter"), "[DONE]")),
      (result) => expect(result.completion).toMatchObject({ finishReason: "content_filter" }),
    ],
    [
      "logprobs and annotations",
      () =>
        stream(
          sse(
            chunk(
              {
                content: "a",
                annotations: [
                  {
                    type: "url_citation",
                    url_citation: { start_index: 0, end_index: 1, url: "https://x", title: "t" },
                  },
                ],
              },
              {},
              { logprobs: { content: [{ token: "a", logprob: -0.1, top_logprobs: [] }] } },
            ),
            finish("stop"),
            "[DONE]",
          ),
        ),
      (result) => expect(result.completion).toMatchObject({ content: "a" }),
    ],
    [
      "no finish reason: a truncated stream",
      () => stream(sse(role, chunk({ content: "Half" }), "[DONE]")),
      (result) => expect(result.error?.reason).toBe("network_error"),
    ],
    [
      "no events at all",
      () => stream("\n\n: nothing\n\n"),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "a JSON body instead of a stream",
      () =>
        stream(JSON.stringify({ id: "x", choices: [] }), { headers: { "content-type": "application/json" } }),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "an error event before any output",
      () => stream(sse(role, JSON.stringify({ error: { message: "overloaded", type: "server_error" } }))),
      (result) => expect(result.error?.reason).toBe("server_error"),
    ],
    [
      "a rate-limit error event before any output",
      () => stream(sse(JSON.stringify({ error: { message: "slow down", code: "rate_limit_exceeded" } }))),
      (result) => expect(result.error?.reason).toBe("rate_limited"),
    ],
    [
      "an error event after output",
      () =>
        stream(
          sse(
            role,
            chunk({ content: "Hi" }),
            JSON.stringify({ error: { message: "boom", type: "server_error" } }),
          ),
        ),
      (result) => expect(result.error?.reason).toBe("server_error"),
    ],
    [
      "a malformed chunk after output",
      () => stream(sse(role, chunk({ content: "Hi" }), "{not json", finish("stop"))),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "a malformed chunk before output",
      () => stream(sse(role, "{not json", chunk({ content: "Hi" }), finish("stop"))),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "a chunk the schema refuses (choices missing)",
      () =>
        stream(
          sse(
            role,
            chunk({ content: "Hi" }),
            JSON.stringify({ id: "x", object: "chat.completion.chunk" }),
            finish("stop"),
          ),
        ),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "a tool call of another type",
      () =>
        stream(
          sse(
            chunk({
              tool_calls: [
                { index: 0, id: "call_x", type: "custom", function: { name: "f", arguments: "{}" } },
              ],
            }),
            finish("tool_calls"),
          ),
        ),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "the last event without its blank line (cut at the end)",
      () => stream(`${sse(role, chunk({ content: "Hi" }))}data: ${finish("stop")}`),
      (result) => expect(result.error?.reason).toBe("network_error"),
    ],
    [
      "a connection cut after output",
      () => stream(sse(role, chunk({ content: "Hi" })), { cut: true }),
      (result) => expect(result.error?.reason).toBe("network_error"),
    ],
    [
      "a connection cut before any output",
      () => stream(sse(role), { cut: true }),
      (result) => expect(result.error?.reason).toBe("network_error"),
    ],
    [
      "a gzip-coded stream",
      () =>
        stream(gzipSync(Buffer.from(sse(role, chunk({ content: "zip" }), finish("stop"), "[DONE]"))), {
          headers: { "content-encoding": "gzip" },
          piece: 9,
        }),
      (result) => expect(result.completion).toMatchObject({ content: "zip" }),
    ],
    [
      'chunks carrying "error": null are chunks',
      () =>
        stream(
          sse(
            JSON.stringify({ ...JSON.parse(chunk({ content: "Hello" })), error: null }),
            JSON.stringify({ ...JSON.parse(finish("stop")), error: null }),
          ),
        ),
      (result) => expect(result.completion).toMatchObject({ content: "Hello", finishReason: "stop" }),
    ],
    [
      // A clean end after the finish is the answer's end (stop 47): the contract's failures are a
      // cut, a stall, no finish reason, an unreadable event; servers that end without [DONE] (TGI
      // before mid-2024, mistral.rs, text-generation-webui) or with an unended one (Open WebUI
      // Pipelines) answer whole. A reset after the finish is a cut (a transport error) and fails.
      "a finished stream whose body ends cleanly without data: [DONE], the usage chunk included",
      () => stream(sse(role, chunk({ content: "Hello" }), finish("stop"), usage)),
      (result) => expect(result.completion).toMatchObject({ content: "Hello", finishReason: "stop" }),
    ],
    [
      "a finished stream whose last line is data: [DONE] without the blank line",
      () => stream(`${sse(role, chunk({ content: "Hello" }), finish("stop"))}data: [DONE]`),
      (result) => expect(result.completion).toMatchObject({ content: "Hello", finishReason: "stop" }),
    ],
    [
      'OpenRouter\'s mid-stream error: an error object and finish_reason "error" in a chunk',
      () =>
        stream(
          sse(
            chunk({ content: "Hel" }),
            JSON.stringify({
              ...JSON.parse(chunk({ content: "" }, {}, { finish_reason: "error" })),
              error: { code: "server_error", message: "Provider disconnected" },
            }),
            "[DONE]",
          ),
        ),
      (result) => expect(result.error?.reason).toBe("server_error"),
    ],
    [
      "a tool call without a name in the same chunk as text: the chunk's text is not handed on",
      () =>
        stream(
          sse(
            chunk({ content: "Hi", tool_calls: [{ index: 0, function: { arguments: "{}" } }] }),
            finish("stop"),
          ),
        ),
      (result) => expect(result).toMatchObject({ error: { reason: "invalid_response" }, deltas: [] }),
      { activityBeats: "any" },
    ],
    [
      "a 204 answer",
      () => stream("", { status: 204 }),
      (result) => expect(result.error?.reason).toBe("invalid_response"),
    ],
    [
      "a 429 with retry-after",
      () =>
        stream(
          JSON.stringify({ error: { message: "slow down", type: "requests", code: "rate_limit_exceeded" } }),
          {
            status: 429,
            headers: { "content-type": "application/json", "retry-after": "7" },
          },
        ),
      (result) =>
        expect(result.error).toMatchObject({ reason: "rate_limited", httpStatus: 429, retryAfterMs: 7000 }),
    ],
    [
      "a 400 context length",
      () =>
        stream(
          JSON.stringify({
            error: { message: "too long", type: "invalid_request_error", code: "context_length_exceeded" },
          }),
          {
            status: 400,
            headers: { "content-type": "application/json" },
          },
        ),
      (result) => expect(result.error).toMatchObject({ reason: "context_length", httpStatus: 400 }),
    ],
    [
      "a 500 with an empty body",
      () => stream("", { status: 500, headers: { "content-type": "text/plain" } }),
      (result) => expect(result.error).toMatchObject({ reason: "server_error", httpStatus: 500 }),
    ],
  ];

  for (const [name, prepare, check, options] of cases) {
    it(`${name}: same outcome, deltas and heartbeats`, async () => {
      prepare();
      check(await same({}, options));
    });
  }

  it("the same request on the wire, names and json_schema strict included", async () => {
    stream(sse(role, chunk({ content: "ok" }), finish("stop"), usage, "[DONE]"));
    const result = await same({
      messages: [
        { role: "system", content: "Be brief.", name: "rules" },
        { role: "user", content: "Hi", name: "alice" },
      ],
      response_format: {
        type: "json_schema",
        json_schema: { name: "a", schema: { type: "object" }, strict: true },
      },
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
    } as Partial<ChatRequest>);
    expect(result.completion?.content).toBe("ok");
    const sent = JSON.parse(bodies[1] as string);
    expect(sent).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(sent.messages.map((message: { name?: string }) => message.name)).toEqual(["rules", "alice"]);
  });

  it("a provider that keeps the connection open after [DONE]: the finished answer stands (lean path only)", async () => {
    let closed = false;
    answer(async ({ response, signal }) => {
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.write(
        sse(role, chunk({ content: "Hello" }), chunk({ content: " done" }), finish("stop"), usage, "[DONE]"),
      );
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      closed = true;
    });
    // The SDK path waits for the body's end (here: its signal); the idle timeout would fail it.
    const startedAt = Date.now();
    const result = await outcome(lean, callFor({}, AbortSignal.timeout(8_000)));
    expect(result).toMatchObject({ completion: { content: "Hello done", finishReason: "stop" } });
    expect(Date.now() - startedAt).toBeLessThan(4_000);
    await expect.poll(() => closed).toBe(true);
  });

  it("an abort mid-stream rejects with the signal's reason on both paths, and closes the connection", async () => {
    let closed = 0;
    answer(async ({ response, signal }) => {
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.write(sse(role, chunk({ content: "Hi" })));
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      closed += 1;
    });
    for (const adapter of [sdk, lean]) {
      const controller = new AbortController();
      const reason = new Error("caller left");
      const pending = adapter.stream(callFor({}, controller.signal), {
        delta: () => controller.abort(reason),
      });
      await expect(pending).rejects.toBe(reason);
    }
    await expect.poll(() => closed).toBe(2);
  });
});
