/**
 * Proves the Gemini fake speaks the real wire format by driving it with the official
 * `@google/genai` SDK: if the SDK builds its URLs against the fake and parses our responses, SSE
 * chunks and google.rpc error bodies, provider code tested against the fake behaves the same
 * against generativelanguage.googleapis.com.
 */
import { ApiError, FinishReason, type GenerateContentResponse, GoogleGenAI } from "@google/genai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeGemini, startFakeGemini } from "./fake-gemini.js";

const MODEL = "gemini-2.5-flash";
const contents = "Hello there";

let fake: FakeGemini;
let client: GoogleGenAI;

beforeAll(async () => {
  fake = await startFakeGemini();
  client = new GoogleGenAI({ apiKey: "AIza-test", httpOptions: { baseUrl: fake.origin } });
});
afterEach(() => fake.reset());
afterAll(() => fake.close());

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

async function collect(stream: AsyncGenerator<GenerateContentResponse>): Promise<GenerateContentResponse[]> {
  const chunks: GenerateContentResponse[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

const generate = (model = MODEL) => client.models.generateContent({ model, contents });
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${fake.url}${path}`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  });

describe("fake Gemini: successes", () => {
  it("answers generateContent at the SDK's own URL with an echo, usage and Google's shape", async () => {
    const response = await generate();

    expect(response.text).toBe("Echo: Hello there");
    expect(response.candidates?.[0]).toMatchObject({
      content: { role: "model", parts: [{ text: "Echo: Hello there" }] },
      finishReason: FinishReason.STOP,
      index: 0,
    });
    expect(response.candidates?.[0]?.safetyRatings).toHaveLength(4);
    const usage = response.usageMetadata;
    expect(usage?.promptTokenCount).toBeGreaterThan(0);
    expect(usage?.totalTokenCount).toBe((usage?.promptTokenCount ?? 0) + (usage?.candidatesTokenCount ?? 0));
    expect(response.modelVersion).toBe(MODEL);
    expect(response.responseId).toMatch(/^[A-Za-z0-9]{22}$/);
    const [call] = fake.calls;
    expect(call?.path).toBe(`/v1beta/models/${MODEL}:generateContent`);
    expect(call?.headers["x-goog-api-key"]).toBe("AIza-test");
    expect(call?.body).toMatchObject({ contents: [{ role: "user", parts: [{ text: "Hello there" }] }] });
  });

  it("returns scripted content, finish reason and usage with cached and thought tokens", async () => {
    fake.script(MODEL, {
      kind: "ok",
      content: "cut short",
      finishReason: "MAX_TOKENS",
      usage: {
        promptTokenCount: 11,
        candidatesTokenCount: 7,
        cachedContentTokenCount: 5,
        thoughtsTokenCount: 3,
      },
    });
    const response = await generate();

    expect(response.text).toBe("cut short");
    expect(response.candidates?.[0]?.finishReason).toBe(FinishReason.MAX_TOKENS);
    expect(response.usageMetadata).toMatchObject({
      promptTokenCount: 11,
      candidatesTokenCount: 7,
      cachedContentTokenCount: 5,
      thoughtsTokenCount: 3,
      totalTokenCount: 21,
    });
  });

  it("returns functionCall parts the SDK exposes as functionCalls", async () => {
    fake.script(MODEL, { kind: "ok", toolCalls: [{ name: "get_weather", arguments: '{"city":"Paris"}' }] });
    const response = await client.models.generateContent({
      model: MODEL,
      contents,
      config: {
        tools: [
          { functionDeclarations: [{ name: "get_weather", parametersJsonSchema: { type: "object" } }] },
        ],
      },
    });

    expect(response.functionCalls).toEqual([{ name: "get_weather", args: { city: "Paris" } }]);
    expect(response.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
    expect(fake.calls[0]?.body.tools).toBeDefined();
  });

  it("streams text chunks over SSE with the finish reason and full usage on the last", async () => {
    fake.script(MODEL, { kind: "ok", content: "The quick brown fox jumps over the lazy dog" });
    const chunks = await collect(await client.models.generateContentStream({ model: MODEL, contents }));

    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.map((chunk) => chunk.text ?? "").join("")).toBe(
      "The quick brown fox jumps over the lazy dog",
    );
    expect(new Set(chunks.map((chunk) => chunk.responseId)).size).toBe(1);
    expect(chunks.slice(0, -1).every((chunk) => chunk.candidates?.[0]?.finishReason === undefined)).toBe(
      true,
    );
    const last = chunks.at(-1);
    expect(last?.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
    expect(last?.usageMetadata?.candidatesTokenCount).toBe(11);
    expect(fake.calls[0]?.path).toBe(`/v1beta/models/${MODEL}:streamGenerateContent`);
  });

  it("frames SSE chunks with \\r\\n\\r\\n and streams a JSON array without alt=sse", async () => {
    const body = { contents: [{ role: "user", parts: [{ text: "Hi" }] }] };
    const sse = await (await post(`/models/${MODEL}:streamGenerateContent?alt=sse`, body)).text();
    expect(sse).toMatch(/^data: \{"candidates".*\}\r\n\r\n$/s);

    const array = await (await post(`/models/${MODEL}:streamGenerateContent`, body)).json();
    expect(array).toHaveLength(2);
    expect(array[1].candidates[0].finishReason).toBe("STOP");
  });

  it("shows a SAFETY finish reason and a blocked prompt's promptFeedback", async () => {
    fake.script(MODEL, { kind: "ok", finishReason: "SAFETY" }, { kind: "prompt_blocked" });

    const unsafe = await generate();
    expect(unsafe.candidates?.[0]?.finishReason).toBe(FinishReason.SAFETY);
    expect(unsafe.candidates?.[0]?.content).toBeUndefined();
    expect(unsafe.text).toBeUndefined();
    expect(unsafe.candidates?.[0]?.safetyRatings).toContainEqual(
      expect.objectContaining({ category: "HARM_CATEGORY_DANGEROUS_CONTENT", blocked: true }),
    );

    const blocked = await generate();
    expect(blocked.candidates).toBeUndefined();
    expect(blocked.promptFeedback?.blockReason).toBe("SAFETY");
    expect(blocked.usageMetadata?.promptTokenCount).toBeGreaterThan(0);
  });
});

describe("fake Gemini: failures", () => {
  it("surfaces 429 as ApiError with RESOURCE_EXHAUSTED, QuotaFailure and RetryInfo", async () => {
    fake.script(MODEL, { kind: "rate_limited", retryAfterSeconds: 17 });
    const error = (await caught(generate())) as ApiError;

    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(429);
    const body = JSON.parse(error.message);
    expect(body.error).toMatchObject({ code: 429, status: "RESOURCE_EXHAUSTED" });
    expect(body.error.message).toContain("Please retry in 17s.");
    expect(body.error.details).toContainEqual({
      "@type": "type.googleapis.com/google.rpc.RetryInfo",
      retryDelay: "17s",
    });
    expect(body.error.details[0]["@type"]).toBe("type.googleapis.com/google.rpc.QuotaFailure");
  });

  it("surfaces 500 INTERNAL, 503 UNAVAILABLE and the context-length 400", async () => {
    fake.script(MODEL, { kind: "server_error" }, { kind: "overloaded" }, { kind: "context_length" });
    const errorOf = async () => {
      const error = (await caught(generate())) as ApiError;
      return { http: error.status, ...JSON.parse(error.message).error };
    };

    expect(await errorOf()).toMatchObject({ http: 500, code: 500, status: "INTERNAL" });
    expect(await errorOf()).toMatchObject({
      http: 503,
      status: "UNAVAILABLE",
      message: "The model is overloaded. Please try again later.",
    });
    const tooLong = await errorOf();
    expect(tooLong).toMatchObject({ http: 400, status: "INVALID_ARGUMENT" });
    expect(tooLong.message).toBe(
      "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    );
  });

  it("rejects a bad key with 400 API_KEY_INVALID and a missing one with 403 when apiKey is set", async () => {
    const guarded = await startFakeGemini({ apiKey: "AIza-right" });
    try {
      const wrong = new GoogleGenAI({ apiKey: "AIza-wrong", httpOptions: { baseUrl: guarded.origin } });
      const error = (await caught(wrong.models.generateContent({ model: MODEL, contents }))) as ApiError;
      expect(error.status).toBe(400);
      expect(JSON.parse(error.message)).toEqual({
        error: {
          code: 400,
          message: "API key not valid. Please pass a valid API key.",
          status: "INVALID_ARGUMENT",
          details: [
            {
              "@type": "type.googleapis.com/google.rpc.ErrorInfo",
              reason: "API_KEY_INVALID",
              domain: "googleapis.com",
              metadata: { service: "generativelanguage.googleapis.com" },
            },
          ],
        },
      });

      const body = { contents: [{ parts: [{ text: "Hi" }] }] };
      const missing = await fetch(`${guarded.url}/models/${MODEL}:generateContent`, {
        method: "POST",
        body: JSON.stringify(body),
      });
      expect(missing.status).toBe(403);
      const byQuery = await fetch(`${guarded.url}/models/${MODEL}:generateContent?key=AIza-right`, {
        method: "POST",
        body: JSON.stringify(body),
      });
      expect(byQuery.status).toBe(200);

      const right = new GoogleGenAI({ apiKey: "AIza-right", httpOptions: { baseUrl: guarded.origin } });
      expect((await right.models.generateContent({ model: MODEL, contents })).text).toBe("Echo: Hello there");
    } finally {
      await guarded.close();
    }
  });

  it("throws from the SDK stream on a mid-stream error chunk, after the text before it", async () => {
    fake.script(MODEL, { kind: "stream_error", afterChunks: 2, content: "one two three four" });
    const texts: string[] = [];
    const error = (await caught(
      (async () => {
        for await (const chunk of await client.models.generateContentStream({ model: MODEL, contents }))
          texts.push(chunk.text ?? "");
      })(),
    )) as ApiError;

    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(503);
    expect(texts).toEqual(["one", " two"]);
  });

  it("hangs until the caller's abortSignal fires", async () => {
    fake.script(MODEL, { kind: "hang" });
    const started = Date.now();
    const error = await caught(
      client.models.generateContent({
        model: MODEL,
        contents,
        config: { abortSignal: AbortSignal.timeout(200) },
      }),
    );

    expect(error).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("fails on malformed JSON, a reset connection and a cut stream", async () => {
    fake.script(MODEL, { kind: "malformed" }, { kind: "reset" }, { kind: "stream_cut", afterChunks: 2 });

    await expect(generate()).rejects.toThrow();
    await expect(generate()).rejects.toThrow();
    const texts: string[] = [];
    const error = await caught(
      (async () => {
        for await (const chunk of await client.models.generateContentStream({ model: MODEL, contents }))
          texts.push(chunk.text ?? "");
      })(),
    );
    expect(error).toBeInstanceOf(Error);
    expect(texts).toEqual(["Echo:", " Hello"]);
  });

  it("validates like Google: JSON, contents, roles, unknown paths", async () => {
    const path = `/models/${MODEL}:generateContent`;
    const badJson = await post(path, "{nope");
    expect(await badJson.json()).toMatchObject({ error: { code: 400, status: "INVALID_ARGUMENT" } });
    const noContents = await post(path, {});
    expect((await noContents.json()).error.message).toMatch(/contents is not specified/);
    const systemRole = await post(path, { contents: [{ role: "system", parts: [{ text: "Hi" }] }] });
    expect((await systemRole.json()).error.message).toBe("Please use a valid role: user, model.");
    const twoUserTurns = await post(path, {
      contents: [
        { role: "user", parts: [{ functionResponse: { name: "f", response: { content: "1" } } }] },
        { role: "user", parts: [{ text: "Hi" }] },
      ],
    });
    expect(twoUserTurns.status).toBe(400);
    expect((await twoUserTurns.json()).error.message).toBe(
      "Please ensure that multiturn requests alternate between user and model.",
    );
    const unknown = await post(`/models/${MODEL}:embedText`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("content-type")).toMatch(/^text\/html/);

    const withSystem = await client.models.generateContent({
      model: MODEL,
      contents,
      config: { systemInstruction: "Be brief" },
    });
    expect(withSystem.text).toBe("Echo: Hello there");
    expect(fake.calls.at(-1)?.body.systemInstruction).toBeDefined();
  });
});

describe("fake Gemini: scripting and recording", () => {
  it("consumes a script in order, then the model default, then the global default", async () => {
    fake.setDefault(MODEL, { kind: "ok", content: "model default" });
    fake.script(MODEL, { kind: "server_error", status: 503 }, { kind: "ok", content: "second" });
    const outcome = (model: string) =>
      generate(model).then(
        (response) => response.text,
        (error: ApiError) => error.status,
      );

    expect(await outcome(MODEL)).toBe(503);
    expect(await outcome(MODEL)).toBe("second");
    expect(await outcome(MODEL)).toBe("model default");
    expect(await outcome("gemini-2.5-pro")).toBe("Echo: Hello there");
    expect(fake.callsFor("gemini-2.5-pro")).toHaveLength(1);
    expect(fake.calls.every((call) => call.connectionId > 0 && call.at > 0)).toBe(true);
  });

  it("delays the answer by delayMs and closes promptly while a request hangs", async () => {
    fake.script(MODEL, { kind: "ok", delayMs: 150 });
    const started = Date.now();
    await generate();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);

    const other = await startFakeGemini();
    other.setDefault("*", { kind: "hang" });
    const otherClient = new GoogleGenAI({ apiKey: "AIza-test", httpOptions: { baseUrl: other.origin } });
    const pending = caught(otherClient.models.generateContent({ model: MODEL, contents }));
    while (other.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const closing = Date.now();
    await other.close();
    expect(Date.now() - closing).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(Error);
  });
});
