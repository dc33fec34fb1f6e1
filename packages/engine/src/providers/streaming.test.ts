import type { LanguageModelV3StreamPart } from "@ai-sdk/provider";
import type { ChatRequest, ModelConfig, ProviderConfig } from "@cascade/shared";
import { describe, expect, it } from "vitest";
import { classifyErrorPart, readStream } from "./ai-sdk/from-stream.js";
import { classifyAnthropicError, classifyAnthropicErrorEvent } from "./errors-anthropic.js";
import { classifyOpenAIError, classifyOpenAIErrorEvent } from "./errors-openai.js";
import { ProviderError } from "./provider-error.js";
import { createSimulatedAdapter } from "./simulated.js";

import type { ProviderCall, StreamSink } from "./types.js";

type Delta = Parameters<StreamSink["delta"]>[0];

function sink() {
  const deltas: Delta[] = [];
  return { deltas, delta: (delta: Delta) => void deltas.push(delta) };
}

function call(request: Partial<ChatRequest> = {}, signal = new AbortController().signal): ProviderCall {
  return {
    request: { messages: [{ role: "user", content: "Tell me a story" }], ...request } as ChatRequest,
    modelId: "sim-model",
    model: { provider: "sim" } as ModelConfig,
    upstreamName: "sim-upstream",
    signal,
  };
}

const simulated = (simulate: ProviderConfig["simulate"], random: () => number = () => 0.99) =>
  createSimulatedAdapter("sim", { type: "simulated", simulate } as ProviderConfig, random);

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe("simulated stream", () => {
  it("streams the same reply generate gives, in several small deltas, without timers at zero latency", async () => {
    const adapter = simulated({ latency_ms: 0 });
    const recorded = sink();
    const streamed = await adapter.stream(call(), recorded);
    expect(streamed).toEqual(await adapter.generate(call()));
    expect(recorded.deltas.length).toBeGreaterThan(3);
    expect(recorded.deltas.map((delta) => delta.content).join("")).toBe(streamed.content);
  });

  it("streams a forced tool call as an opening fragment and argument pieces", async () => {
    const recorded = sink();
    const tools = [{ type: "function" as const, function: { name: "lookup" } }];
    const completion = await simulated({}).stream(call({ tools, tool_choice: "required" }), recorded);
    const [first, ...rest] = recorded.deltas;
    expect(first).toEqual({ toolCalls: [{ index: 0, id: completion.toolCalls[0]?.id, name: "lookup" }] });
    expect(rest.map((delta) => delta.toolCalls?.[0]?.arguments).join("")).toBe(
      completion.toolCalls[0]?.function.arguments,
    );
  });

  it("fails like generate: 429 with its Retry-After, 500, before any delta", async () => {
    const limited = sink();
    const error = await rejection(
      simulated({ rate_limit_rate: 1, retry_after_s: 2 }).stream(call(), limited),
    );
    expect(error).toMatchObject({ reason: "rate_limited", retryAfterMs: 2000 });
    expect(limited.deltas).toEqual([]);
    const failed = await rejection(simulated({ error_rate: 1 }).stream(call(), sink()));
    expect(failed).toMatchObject({ reason: "server_error", httpStatus: 500 });
  });

  it("stream_cut_rate breaks the stream off midway with network_error", async () => {
    const recorded = sink();
    const error = await rejection(simulated({ stream_cut_rate: 1 }).stream(call(), recorded));
    expect(error).toMatchObject({ reason: "network_error" });
    expect(recorded.deltas.length).toBeGreaterThan(0);
    const full = await simulated({}).stream(call(), sink());
    expect(recorded.deltas.map((delta) => delta.content).join("").length).toBeLessThan(
      full.content?.length ?? 0,
    );
  });

  it("spreads latency over the deltas and stops at an abort with the signal's reason", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled");
    const recorded = {
      deltas: [] as Delta[],
      delta(delta: Delta) {
        this.deltas.push(delta);
        if (this.deltas.length === 2) controller.abort(reason);
      },
    };
    const error = await rejection(
      simulated({ latency_ms: 200 }).stream(call({}, controller.signal), recorded),
    );
    expect(error).toBe(reason);
    expect(recorded.deltas).toHaveLength(2);
  });

  it("a hang ends only with the signal", async () => {
    const controller = new AbortController();
    const pending = rejection(
      simulated({ hang_rate: 1 }, () => 0).stream(call({}, controller.signal), sink()),
    );
    setTimeout(() => controller.abort(new Error("timeout")), 20);
    expect(await pending).toMatchObject({ message: "timeout" });
  });
});

function streamOf(parts: LanguageModelV3StreamPart[]): ReadableStream<LanguageModelV3StreamPart> {
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(part);
      controller.close();
    },
  });
}

const usage = {
  inputTokens: { total: 3, noCache: 3, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 2, text: 2, reasoning: undefined },
};

describe("readStream", () => {
  const classifiers = { classify: classifyOpenAIError, classifyEvent: classifyOpenAIErrorEvent };

  it("assembles text, and tool calls that arrive whole, giving the sink the whole arguments", async () => {
    const recorded = sink();
    const result = await readStream(
      streamOf([
        { type: "stream-start", warnings: [] },
        { type: "text-start", id: "0" },
        { type: "text-delta", id: "0", delta: "Hi" },
        { type: "text-end", id: "0" },
        { type: "tool-call", toolCallId: "c1", toolName: "f", input: '{"a":1}' },
        { type: "finish", finishReason: { unified: "tool-calls", raw: "tool_calls" }, usage },
      ]),
      recorded,
      new AbortController().signal,
      classifiers,
    );
    expect(recorded.deltas).toEqual([
      { content: "Hi" },
      { toolCalls: [{ index: 0, id: "c1", name: "f" }] },
      { toolCalls: [{ index: 0, arguments: '{"a":1}' }] },
    ]);
    expect(result.content).toEqual([
      { type: "text", text: "Hi" },
      { type: "tool-call", toolCallId: "c1", toolName: "f", input: '{"a":1}' },
    ]);
  });

  it("a stream without a finish part is network_error", async () => {
    const stream = streamOf([
      { type: "stream-start", warnings: [] },
      { type: "text-delta", id: "0", delta: "Hi" },
    ]);
    const error = await rejection(readStream(stream, sink(), new AbortController().signal, classifiers));
    expect(error).toMatchObject({ reason: "network_error" });
  });

  it("a whole stream whose finish names no reason (an enum's *_UNSPECIFIED) is invalid_response, not a stop", async () => {
    const stream = streamOf([
      { type: "stream-start", warnings: [] },
      { type: "text-delta", id: "0", delta: "Half an ans" },
      { type: "finish", finishReason: { unified: "other", raw: "FINISH_REASON_UNSPECIFIED" }, usage },
    ]);
    const error = await rejection(readStream(stream, sink(), new AbortController().signal, classifiers));
    expect(error).toMatchObject({
      reason: "invalid_response",
      message: expect.stringContaining("FINISH_REASON_UNSPECIFIED"),
    });
  });
});

describe("mid-stream error parts", () => {
  const openai = { classify: classifyOpenAIError, classifyEvent: classifyOpenAIErrorEvent };
  const anthropic = {
    classify: (error: unknown) => classifyAnthropicError(error),
    classifyEvent: classifyAnthropicErrorEvent,
  };

  it.each([
    [
      "OpenAI server_error",
      openai,
      { message: "boom", type: "server_error", param: null, code: null },
      "server_error",
    ],
    [
      "OpenAI rate limit",
      openai,
      { message: "slow down", type: "tokens", code: "rate_limit_exceeded" },
      "rate_limited",
    ],
    [
      "OpenAI context length",
      openai,
      { message: "too long", type: "invalid_request_error", code: "context_length_exceeded" },
      "context_length",
    ],
    ["Anthropic overloaded", anthropic, { type: "overloaded_error", message: "Overloaded" }, "server_error"],
    [
      "Anthropic api_error",
      anthropic,
      { type: "api_error", message: "Internal server error" },
      "server_error",
    ],
    ["Anthropic rate limit", anthropic, { type: "rate_limit_error", message: "slow" }, "rate_limited"],
    ["Anthropic timeout", anthropic, { type: "timeout_error", message: "late" }, "timeout"],
    ["Anthropic unknown type", anthropic, { type: "brand_new_error", message: "?" }, "server_error"],
    ["an unrecognised payload", openai, 42, "server_error"],
  ] as const)("%s → %s", (_name, classifiers, payload, reason) => {
    const error = classifyErrorPart(payload, classifiers);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ reason, httpStatus: undefined });
  });

  it("a chunk the SDK could not parse is invalid_response", () => {
    const parseError = Object.assign(new Error("JSON parsing failed"), { name: "AI_JSONParseError" });
    expect(classifyErrorPart(parseError, openai).reason).toBe("invalid_response");
  });
});
