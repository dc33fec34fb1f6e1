import { createRequire } from "node:module";
import type { ChatRequest, ModelConfig, ProviderConfig } from "@cascade/shared";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createProviderFetch } from "../../packages/engine/src/providers/http.js";
import { createOpenAIAdapter, mistralToolId } from "../../packages/engine/src/providers/openai.js";
import { watchedFetch } from "../../packages/engine/src/providers/response-watch.js";
import type { ProviderCall } from "../../packages/engine/src/providers/types.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

/**
 * What Cascade sends Mistral's own API (`type: openai`, a `*.mistral.ai` base_url), which
 * validates more than OpenAI: tool call ids of exactly 9 letters and digits, and no
 * `stream_options`. The fake answers on loopback for the name api.mistral.ai (a dispatcher whose
 * lookup says 127.0.0.1), so the host rules apply as they would towards Mistral.
 */
// undici as the engine has it (the repository root does not depend on it).
const { Agent } = createRequire(new URL("../../packages/engine/package.json", import.meta.url))(
  "undici",
) as typeof import("../../packages/engine/node_modules/undici/index.js");
type Agent = InstanceType<typeof Agent>;

describe("requests to Mistral's API", () => {
  let fake: FakeOpenAI;
  let agent: Agent;
  let baseUrl = "";

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    agent = new Agent({
      connect: {
        lookup: (_hostname, options, callback) => {
          if ((options as { all?: boolean }).all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
          else (callback as (error: null, address: string, family: number) => void)(null, "127.0.0.1", 4);
        },
      },
    });
    baseUrl = `http://api.mistral.ai:${fake.port}/v1`;
  });
  afterAll(async () => {
    await agent?.close();
    await fake?.close();
  });
  beforeEach(() => fake.reset());

  const provider = () => ({ type: "openai", base_url: baseUrl }) as ProviderConfig;
  const call = (request: Partial<ChatRequest>): ProviderCall => ({
    request: { messages: [{ role: "user", content: "Hi" }], max_tokens: 50, ...request } as ChatRequest,
    modelId: "mistral-small",
    model: { provider: "mistral", name: "mistral-small-latest" } as ModelConfig,
    upstreamName: "mistral-small-latest",
    signal: AbortSignal.timeout(10_000),
  });
  const toolConversation: Partial<ChatRequest> = {
    messages: [
      { role: "user", content: "Weather in Paris and Rome?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_Zq9x8AbCdEfGhIjKlMnOpQrS", type: "function", function: { name: "w", arguments: "{}" } },
          { id: "toolu_01A09q90qw90lq917835lq9", type: "function", function: { name: "w", arguments: "{}" } },
          { id: "abc123XYZ", type: "function", function: { name: "w", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "toolu_01A09q90qw90lq917835lq9", content: "13C" },
      { role: "tool", tool_call_id: "call_Zq9x8AbCdEfGhIjKlMnOpQrS", content: "18C" },
      { role: "tool", tool_call_id: "abc123XYZ", content: "20C" },
    ],
    tools: [{ type: "function", function: { name: "w", parameters: { type: "object" } } }],
  };

  it("sends other vendors' tool call ids as 9 letters and digits, paired as before (lean client and SDK)", async () => {
    // Mistral answers them with 400 "Tool call id was call_… but must be a-z, A-Z, 0-9, with a length of 9."
    const openai = mistralToolId("call_Zq9x8AbCdEfGhIjKlMnOpQrS");
    const anthropic = mistralToolId("toolu_01A09q90qw90lq917835lq9");
    expect(openai).toMatch(/^[a-zA-Z0-9]{9}$/);
    expect(anthropic).toMatch(/^[a-zA-Z0-9]{9}$/);
    expect(openai).not.toBe(anthropic);
    const fetch = createProviderFetch({ dispatcher: agent });
    for (const adapter of [
      createOpenAIAdapter("mistral", provider(), "sk-test", fetch, undefined, { dispatcher: agent }),
      createOpenAIAdapter("mistral", provider(), "sk-test", fetch),
    ]) {
      fake.reset();
      await adapter.generate(call(toolConversation));
      const body = fake.callsFor("mistral-small-latest")[0]?.body;
      expect(body.messages[1].tool_calls.map((toolCall: { id: string }) => toolCall.id)).toEqual([
        openai,
        anthropic,
        "abc123XYZ",
      ]);
      expect(body.messages.slice(2).map((message: { tool_call_id: string }) => message.tool_call_id)).toEqual(
        [anthropic, openai, "abc123XYZ"],
      );
    }
  });

  it("sends a tool call's arguments that are not an object as the caller wrote them, under its rewritten id (ADR 0039)", async () => {
    const conversation: Partial<ChatRequest> = {
      ...toolConversation,
      messages: (toolConversation.messages ?? []).map((message) =>
        message.role === "assistant" && message.tool_calls
          ? {
              ...message,
              tool_calls: message.tool_calls.map((toolCall, index) =>
                index === 0
                  ? { ...toolCall, function: { ...toolCall.function, arguments: '{"city": "Par' } }
                  : toolCall,
              ),
            }
          : message,
      ),
    };
    // As the registry builds them: the SDK's calls go through the watched fetch, which puts the
    // fields back into a body the lean client did not build.
    const fetch = watchedFetch(createProviderFetch({ dispatcher: agent }));
    for (const [adapter, stream] of [
      [createOpenAIAdapter("mistral", provider(), "sk-test", fetch, undefined, { dispatcher: agent }), false],
      [createOpenAIAdapter("mistral", provider(), "sk-test", fetch), false],
      [createOpenAIAdapter("mistral", provider(), "sk-test", fetch, undefined, { dispatcher: agent }), true],
      [createOpenAIAdapter("mistral", provider(), "sk-test", fetch), true],
    ] as const) {
      fake.reset();
      if (stream)
        await adapter.stream(call({ ...conversation, stream: true }), {
          delta() {},
          heartbeat() {},
        } as never);
      else await adapter.generate(call(conversation));
      const body = fake.callsFor("mistral-small-latest")[0]?.body;
      expect(
        body.messages[1].tool_calls.map(
          (toolCall: { function: { arguments: string } }) => toolCall.function.arguments,
        ),
      ).toEqual(['{"city": "Par', "{}", "{}"]);
      expect(body.messages[1].tool_calls[0].id).toBe(mistralToolId("call_Zq9x8AbCdEfGhIjKlMnOpQrS"));
    }
  });

  it("streams without stream_options (Mistral: 422 extra_forbidden), lean client and SDK alike", async () => {
    const fetch = createProviderFetch({ dispatcher: agent });
    for (const adapter of [
      createOpenAIAdapter("mistral", provider(), "sk-test", fetch, undefined, { dispatcher: agent }),
      createOpenAIAdapter("mistral", provider(), "sk-test", fetch),
    ]) {
      fake.reset();
      const completion = await adapter.stream(call({ stream: true }), {
        delta() {},
        heartbeat() {},
      } as never);
      expect(completion.finishReason).toBe("stop");
      const body = fake.callsFor("mistral-small-latest")[0]?.body;
      expect(body).toMatchObject({ stream: true });
      expect(body).not.toHaveProperty("stream_options");
    }
  });

  it("falls back on Mistral's tool call id 400 where it still comes (a Mistral model served elsewhere)", async () => {
    fake.script("mistral-small-latest", {
      kind: "status",
      status: 400,
      body: {
        object: "error",
        message: "Tool call id was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a length of 9.",
        type: "invalid_function_call",
        param: null,
        code: "3280",
      },
    });
    const elsewhere = { type: "openai", base_url: fake.url } as ProviderConfig;
    const adapter = createOpenAIAdapter("vllm", elsewhere, "sk-test", createProviderFetch(), undefined, {
      dispatcher: agent,
    });
    const error = await adapter.generate(call(toolConversation)).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ reason: "bad_request", providerSpecific: true, httpStatus: 400 });
    // Not refitted off Mistral's hosts: the ids went as the caller sent them.
    const body = fake.callsFor("mistral-small-latest")[0]?.body;
    expect(body.messages[1].tool_calls[0].id).toBe("call_Zq9x8AbCdEfGhIjKlMnOpQrS");
  });
});
