/**
 * A 400's `param` names the field as OpenAI's API does: array elements in brackets
 * (`messages[0].content`, `tools[1].function.name`), object keys after dots, even a key that is
 * all digits (`metadata.0`, `logit_bias.50256`). It was zod's dotted path (`messages.0.content`)
 * for the body's own validation, while chain resolution already said `models[0]`.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const acme = { authorization: "Bearer key-a" };
const hello = { role: "user", content: "Hello" };
const tool = (name: unknown) => ({ type: "function", function: { name, parameters: { type: "object" } } });

describe("param of a 400 names the field as OpenAI does", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startTenantsApi(inject("redisUrl"), { acme: "key-a" });
  });
  afterAll(() => stack?.close());

  it.each([
    [{ request: { messages: [hello, { role: "user", content: 5 }] } }, "request.messages[1].content"],
    [{ request: { messages: [{ role: "wizard", content: "x" }] } }, "request.messages[0].role"],
    [{ request: { messages: [hello], tools: [tool("ok"), tool(7)] } }, "request.tools[1].function.name"],
    [{ request: { messages: [hello], stop: ["a", 5] } }, "request.stop"],
    [{ request: { messages: [hello] }, metadata: { "0": 5 } }, "metadata.0"],
    [{ request: { messages: [hello], logit_bias: { "50256": "high" } } }, "request.logit_bias.50256"],
    [{ request: { messages: [hello] }, models: [5] }, "models[0]"],
  ])("POST /v1/jobs %j → %s", async (body, param) => {
    const answer = await stack.request("POST", "/v1/jobs", { body, headers: acme });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ type: "invalid_request_error", param });
    // The message names the same field the same way.
    expect(answer.body.error.message).toContain(param);
  });

  it("the gateway's 400 carries the same path without `request.`, as the SDK reports it", async () => {
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: "key-a", maxRetries: 0 });
    const error = await openai.chat.completions
      .create({
        model: "default",
        messages: [
          hello as OpenAI.ChatCompletionMessageParam,
          { role: "user", content: [{ type: "text" }] } as never,
        ],
      })
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("messages[1].content");
  });
});
