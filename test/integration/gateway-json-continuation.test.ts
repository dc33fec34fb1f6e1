/**
 * A JSON answer (`response_format` json_object or json_schema) whose stream breaks after the
 * caller has tokens, continued on a Claude hop with the `prefill` capability: Claude must continue
 * the text already shown, so it gets that text as a prefill and no JSON mode of its own. The SDK's
 * JSON mode for Anthropic is a forced "json" tool (or native structured outputs), and either makes
 * Claude start a new object instead of continuing the shown one: the caller got
 * `{"answer": "hal{"answer": "hi"}` as one whole answer (found by a black-box probe).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

const WHOLE = '{"answer": "half of it"}';
/** What a's cut stream shows: its first two content pieces. */
const SHOWN = '{"answer": "half';
const CONTINUATION = ' of it"}';

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let stack: Stack;

beforeAll(async () => {
  [openai, anthropic] = await Promise.all([
    startFakeOpenAI({ apiKey: "sk-up-key" }),
    startFakeAnthropic({ apiKey: "sk-ant-key" }),
  ]);
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up-key", ANT_KEY: "sk-ant-key" },
    config: {
      providers: {
        up: { type: "openai", base_url: openai.url, api_key_env: "UP_KEY", breaker: { min_requests: 1000 } },
        ant: { type: "anthropic", base_url: anthropic.url, api_key_env: "ANT_KEY" },
      },
      models: {
        a: { provider: "up", name: "up-a", capabilities: ["json"] },
        claude: { provider: "ant", name: "up-claude", capabilities: ["json", "prefill"] },
        // A name @ai-sdk/anthropic takes native structured outputs for (output_config.format).
        "claude-native": { provider: "ant", name: "claude-sonnet-4-5", capabilities: ["json", "prefill"] },
      },
      routes: {
        default: { chain: [{ model: "a", idle_timeout_ms: 300 }, { model: "claude" }] },
        native: { chain: [{ model: "a", idle_timeout_ms: 300 }, { model: "claude-native" }] },
      },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await Promise.all([openai?.close(), anthropic?.close()]);
});
beforeEach(() => {
  openai.reset();
  anthropic.reset();
});

const FORMATS = [
  { name: "json_object", format: { type: "json_object" } },
  {
    name: "json_schema",
    format: {
      type: "json_schema",
      json_schema: {
        name: "answer",
        strict: true,
        schema: {
          type: "object",
          properties: { answer: { type: "string" } },
          required: ["answer"],
          additionalProperties: false,
        },
      },
    },
  },
];

describe.each([
  { route: "default", upstream: "up-claude" },
  { route: "native", upstream: "claude-sonnet-4-5" },
])("a JSON stream cut after the caller has tokens, continued on $upstream", ({ route, upstream }) => {
  it.each(FORMATS)(
    "$name: Claude gets the shown text as a prefill and no JSON mode; one whole answer",
    async ({ format }) => {
      openai.script("up-a", { kind: "stream_cut", afterChunks: 4, content: WHOLE });
      anthropic.script(upstream, { kind: "ok", content: CONTINUATION });
      const response = await fetch(`${stack.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: route,
          messages: [{ role: "user", content: "Answer in JSON" }],
          response_format: format,
          stream: true,
        }),
      });
      expect(response.status).toBe(200);
      const text = await response.text();
      const payloads = text
        .split("\n\n")
        .filter((event) => event.startsWith("data: "))
        .map((event) => event.slice("data: ".length));
      expect(payloads.at(-1)).toBe("[DONE]");
      const chunks = payloads.filter((data) => data !== "[DONE]").map((data) => JSON.parse(data));
      const content = chunks.map((chunk) => chunk.choices?.[0]?.delta?.content ?? "").join("");
      expect(content).toBe(SHOWN + CONTINUATION);
      expect(JSON.parse(content)).toEqual({ answer: "half of it" });

      const [call] = anthropic.callsFor(upstream);
      const body = call?.body as Record<string, unknown> & {
        messages: Array<{ role: string; content: unknown }>;
      };
      // The shown text, as the last (assistant) turn, for Claude to continue.
      const last = body.messages.at(-1);
      expect(last?.role).toBe("assistant");
      expect(JSON.stringify(last?.content)).toContain("half");
      // No JSON mode that would start a new object: no forced json tool, no output format.
      expect(body.tools).toBeUndefined();
      expect(body.tool_choice).toBeUndefined();
      expect(body.output_config).toBeUndefined();
      expect(body.output_format).toBeUndefined();
    },
  );
});
