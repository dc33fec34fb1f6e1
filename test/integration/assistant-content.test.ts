/**
 * An assistant message's `content` in a job's request (an OpenAI chat-completions body):
 *  - OpenAI's assistant content parts are `text` and `refusal` (ChatCompletionContentPartRefusal
 *    in the openai SDK's ChatCompletionAssistantMessageParam): a conversation replayed with a
 *    refusal in it is taken (it was a 400).
 *  - A mistake in an assistant message's content (a number, an object, an image part, a text part
 *    without text) says what content should be, as for user, system and tool messages (it was
 *    "request.messages.N.content: Invalid input": the union with null hid the message).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const acme = { authorization: "Bearer key-a" };
const withAssistant = (assistant: Record<string, unknown>) => ({
  request: {
    messages: [
      { role: "user", content: "Say something rude" },
      { role: "assistant", ...assistant },
      { role: "user", content: "Why not?" },
    ],
  },
});

describe("assistant messages in a job's request", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startTenantsApi(inject("redisUrl"), { acme: "key-a" });
  });
  afterAll(() => stack?.close());

  it("take OpenAI's refusal content part", async () => {
    const answer = await stack.request("POST", "/v1/jobs", {
      body: withAssistant({ content: [{ type: "refusal", refusal: "I can't help with that." }] }),
      headers: acme,
    });
    // It was 400 "request.messages.1.content: Invalid input".
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  });

  it("say what is wrong with the content, as user, system and tool messages do", async () => {
    for (const content of [
      5,
      { text: "x" },
      [{ type: "image_url", image_url: { url: "https://example.com/a.png" } }],
      [{ type: "text" }],
    ]) {
      const answer = await stack.request("POST", "/v1/jobs", {
        body: withAssistant({ content }),
        headers: acme,
      });
      expect(answer.status).toBe(400);
      expect(answer.body.error.param).toBe("request.messages[1].content");
      // It was, for every one: "request.messages.1.content: Invalid input".
      expect(answer.body.error.message, JSON.stringify(content)).not.toBe(
        "request.messages.1.content: Invalid input",
      );
    }
  });
});
