/**
 * A call not streamed whose provider answered 2xx and whose answer then could not be read (a body
 * that is not JSON, or one cut off mid-way) was billed by its provider: the provider finished the
 * completion before it sent it. Such a call is charged as a non-streamed call that was abandoned
 * (ADR 0013): the prompt estimate plus its whole answer's output (`max_tokens`, else the adapter's
 * limit). An HTTP error status, or a connection refused before any answer, stays free.
 * (Black-box billing audit: both were charged $0 in the job's cost_usd, usage and the gateway's
 * x-cascade-cost-usd, OpenAI, Anthropic and Gemini alike.)
 *
 * A whole answer whose provider reported no finish reason (OpenAI's `finish_reason: null`,
 * Anthropic's `stop_reason: null`, a Gemini candidate without `finishReason`) was passed on with
 * `finish_reason: "stop"`, an end the provider never reported (black-box failure-injection audit),
 * while the same answer streamed is a failed attempt. It is an `invalid_response` now: the chain
 * moves on, and the call is charged what its answer shows (its usage, else the prompt estimate
 * and its text / 4).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeGemini, startFakeGemini } from "../support/fake-gemini.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

// Prices chosen so that each charge is exact: input 2, output 8 per million (fallback: 0 and 0).
const PRICE = { input_per_mtok: 2, output_per_mtok: 8 };
const MAX_TOKENS = 300;
// "Hello there" (11 characters): ceil(11 / 4) + 10 per message = 13 prompt tokens.
const MESSAGES = [{ role: "user", content: "Hello there" }];
const PROMPT_ESTIMATE = 13;
const WHOLE_ANSWER = (PROMPT_ESTIMATE * 2 + MAX_TOKENS * 8) / 1e6;

const REPORTED = (100 * 2 + 50 * 8) / 1e6;
// No usage reported: the prompt estimate, and "Hello" (5 characters) as ceil(5 / 4) = 2 tokens.
const ESTIMATED = (13 * 2 + 2 * 8) / 1e6;

const openAIBody = (withUsage: boolean) => ({
  id: "chatcmpl-unfinished",
  object: "chat.completion",
  created: 1764000000,
  model: "up-oa",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: null }],
  ...(withUsage ? { usage: { prompt_tokens: 100, completion_tokens: 50, total_tokens: 150 } } : {}),
});
const anthropicBody = {
  id: "msg_unfinished",
  type: "message",
  role: "assistant",
  model: "up-an",
  content: [{ type: "text", text: "Hello" }],
  stop_reason: null,
  stop_sequence: null,
  usage: { input_tokens: 100, output_tokens: 50 },
};
const geminiBody = {
  candidates: [{ content: { role: "model", parts: [{ text: "Hello" }] }, index: 0 }],
  usageMetadata: { promptTokenCount: 100, candidatesTokenCount: 50, totalTokenCount: 150 },
  modelVersion: "up-gm",
};

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let gemini: FakeGemini;
let stack: Stack;

beforeAll(async () => {
  openai = await startFakeOpenAI({ apiKey: "sk-up" });
  anthropic = await startFakeAnthropic({ apiKey: "sk-ant" });
  gemini = await startFakeGemini({ apiKey: "AIza-up" });
  const breaker = { min_requests: 1000 };
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", ANT_KEY: "sk-ant", GEM_KEY: "AIza-up" },
    config: {
      providers: {
        oa: { type: "openai", base_url: openai.url, api_key_env: "UP_KEY", breaker },
        an: { type: "anthropic", base_url: anthropic.url, api_key_env: "ANT_KEY", breaker },
        gm: { type: "gemini", base_url: gemini.url, api_key_env: "GEM_KEY", breaker },
      },
      models: {
        "m-oa": { provider: "oa", name: "up-oa", price: PRICE },
        "m-an": { provider: "an", name: "up-an", price: PRICE },
        "m-gm": { provider: "gm", name: "up-gm", price: PRICE },
        free: { provider: "oa", name: "up-free", price: { input_per_mtok: 0, output_per_mtok: 0 } },
      },
      routes: {
        "r-oa": { chain: [{ model: "m-oa" }, { model: "free" }] },
        "r-an": { chain: [{ model: "m-an" }, { model: "free" }] },
        "r-gm": { chain: [{ model: "m-gm" }, { model: "free" }] },
      },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await Promise.all([openai?.close(), anthropic?.close(), gemini?.close()]);
});
beforeEach(() => {
  openai.reset();
  anthropic.reset();
  gemini.reset();
  openai.setDefault("up-free", { kind: "ok", content: "From the free model." });
});

function script(
  route: string,
  behaviour: { kind: "malformed" } | { kind: "stream_cut"; afterChunks: number },
) {
  if (route === "r-oa") openai.script("up-oa", behaviour);
  else if (route === "r-an") anthropic.script("up-an", behaviour);
  else gemini.script("up-gm", behaviour);
}

async function jobCost(route: string): Promise<{ cost: number; attempts: string[] }> {
  const created = await stack.request("POST", "/v1/jobs", {
    body: { route, request: { messages: MESSAGES, max_tokens: MAX_TOKENS } },
  });
  const job = (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`)).body;
  expect(job.status).toBe("succeeded");
  return {
    cost: job.cost_usd,
    attempts: job.attempts.map((a: { outcome: string; reason?: string }) => `${a.outcome}:${a.reason ?? ""}`),
  };
}

describe("a 2xx answer not streamed that cannot be read is charged its whole answer", () => {
  for (const route of ["r-oa", "r-an", "r-gm"]) {
    it(`${route}: a body that is not JSON, in a job`, async () => {
      script(route, { kind: "malformed" });
      const { cost, attempts } = await jobCost(route);
      expect(attempts).toEqual(["error:invalid_response", "success:"]);
      expect(cost).toBeCloseTo(WHOLE_ANSWER, 12);
    });

    it(`${route}: a body cut off mid-way, through the gateway`, async () => {
      script(route, { kind: "stream_cut", afterChunks: 1 });
      const answer = await stack.request("POST", "/v1/chat/completions", {
        body: { model: route, messages: MESSAGES, max_tokens: MAX_TOKENS },
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get("x-cascade-fallbacks")).toMatch(
        /^m-(oa|an|gm):(network_error|invalid_response)$/,
      );
      expect(Number(answer.headers.get("x-cascade-cost-usd"))).toBeCloseTo(WHOLE_ANSWER, 12);
    });
  }

  it("an HTTP error status stays free", async () => {
    openai.script("up-oa", { kind: "server_error" });
    const { cost, attempts } = await jobCost("r-oa");
    expect(attempts).toEqual(["error:server_error", "success:"]);
    expect(cost).toBe(0);
  });
});

function scriptUnfinished(route: string, withUsage = true): void {
  if (route === "r-oa") openai.script("up-oa", { kind: "status", status: 200, body: openAIBody(withUsage) });
  else if (route === "r-an") anthropic.script("up-an", { kind: "status", status: 200, body: anthropicBody });
  else gemini.script("up-gm", { kind: "status", status: 200, body: geminiBody });
}

describe("a non-streamed answer without a finish reason", () => {
  for (const route of ["r-oa", "r-an", "r-gm"]) {
    it(`${route}: is an invalid_response the chain moves on from, charged its usage (gateway)`, async () => {
      scriptUnfinished(route);
      const answer = await stack.request("POST", "/v1/chat/completions", {
        body: { model: route, messages: MESSAGES, max_tokens: 300 },
      });
      expect(answer.status).toBe(200);
      expect(answer.body.choices[0].message.content).toBe("From the free model.");
      expect(answer.body.choices[0].finish_reason).toBe("stop");
      expect(answer.headers.get("x-cascade-fallbacks")).toMatch(/^m-(oa|an|gm):invalid_response$/);
      expect(Number(answer.headers.get("x-cascade-cost-usd"))).toBeCloseTo(REPORTED, 12);
    });
  }

  it("in a job, with no usage reported: charged the prompt estimate and its text", async () => {
    scriptUnfinished("r-oa", false);
    const created = await stack.request("POST", "/v1/jobs", {
      body: { route: "r-oa", request: { messages: MESSAGES, max_tokens: 300 } },
    });
    const job = (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`)).body;
    expect(job.status).toBe("succeeded");
    expect(
      job.attempts.map((a: { outcome: string; reason?: string }) => `${a.outcome}:${a.reason ?? ""}`),
    ).toEqual(["error:invalid_response", "success:"]);
    expect(job.attempts[0].message).toMatch(/no finish reason/);
    expect(job.cost_usd).toBeCloseTo(ESTIMATED, 12);
  });

  it("a finish reason the provider named is passed on: Mistral's model_length is length", async () => {
    openai.script("up-oa", {
      kind: "status",
      status: 200,
      body: {
        ...openAIBody(true),
        choices: [
          { index: 0, message: { role: "assistant", content: "Hel" }, finish_reason: "model_length" },
        ],
      },
    });
    const answer = await stack.request("POST", "/v1/chat/completions", {
      body: { model: "r-oa", messages: MESSAGES, max_tokens: 300 },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.choices[0]).toMatchObject({ message: { content: "Hel" }, finish_reason: "length" });
    expect(answer.headers.get("x-cascade-fallbacks")).toBeNull();
  });
});
