/**
 * A streamed answer with no text and no tool calls (a reasoning model that spent its max_tokens
 * thinking, a model that answers "" after a tool result): OpenAI still opens the stream with
 * `delta: {role: "assistant", content: ""}`, and the official SDK's stream helper needs that role
 * (`finalChatCompletion()` throws "missing role for choice 0" without it). Found by a black-box
 * audit with the `openai` SDK.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up" },
    withoutWorker: true,
    config: {
      providers: { up: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" } },
      models: { a: { provider: "up", name: "up-a", price: { input_per_mtok: 1, output_per_mtok: 2 } } },
      routes: { default: { chain: [{ model: "a" }] } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});
beforeEach(() => fake.reset());

const openai = () => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: "none", maxRetries: 0 });
const ask = { model: "a", messages: [{ role: "user" as const, content: "Think hard" }], max_tokens: 5 };

describe("an empty streamed answer", () => {
  it("opens with the assistant role, as OpenAI's streams do", async () => {
    fake.script("up-a", { kind: "ok", content: "", finishReason: "length" });
    const stream = await openai().chat.completions.create({ ...ask, stream: true });
    const choices = [];
    for await (const chunk of stream) {
      expect(chunk.model).toBe("a");
      choices.push(...chunk.choices);
    }
    expect(choices[0]?.delta.role).toBe("assistant");
    expect(choices.filter((choice) => choice.delta.role !== undefined)).toHaveLength(1);
    expect(choices.at(-1)?.finish_reason).toBe("length");
  });

  it("is read whole by the SDK's stream helper", async () => {
    fake.script("up-a", { kind: "ok", content: "", finishReason: "length" });
    const completion = await openai().chat.completions.stream(ask).finalChatCompletion();
    expect(completion.model).toBe("a");
    expect(completion.choices[0]?.finish_reason).toBe("length");
    // The helper reads OpenAI's own empty stream the same way: content null, no text.
    expect(completion.choices[0]?.message).toMatchObject({ role: "assistant", content: null });
  });
});
