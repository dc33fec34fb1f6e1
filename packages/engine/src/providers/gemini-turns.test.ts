import type { LanguageModelV3Prompt } from "@ai-sdk/provider";
import { describe, expect, it } from "vitest";
import { alternatingTurns, markTurnsToJoin, withAlternatingTurns } from "./gemini-turns.js";

const responsePart = (name: string) => ({ functionResponse: { name, response: { content: "ok" } } });

describe("alternatingTurns", () => {
  it("joins adjacent turns of one role, parts in order; a turn without a role is a user turn", () => {
    expect(
      alternatingTurns([
        { role: "user", parts: [{ text: "Weather?" }] },
        { role: "model", parts: [{ functionCall: { name: "a" } }, { functionCall: { name: "b" } }] },
        { role: "user", parts: [responsePart("a")] },
        { role: "user", parts: [responsePart("b")] },
        { parts: [{ text: "Which is warmer?" }] },
      ]),
    ).toEqual([
      { role: "user", parts: [{ text: "Weather?" }] },
      { role: "model", parts: [{ functionCall: { name: "a" } }, { functionCall: { name: "b" } }] },
      { role: "user", parts: [responsePart("a"), responsePart("b"), { text: "Which is warmer?" }] },
    ]);
  });

  it("leaves alternating turns, and what is not a list of turns, alone", () => {
    expect(
      alternatingTurns([
        { role: "user", parts: [{ text: "Hi" }] },
        { role: "model", parts: [{ text: "Hello" }] },
      ]),
    ).toBeUndefined();
    expect(alternatingTurns(undefined)).toBeUndefined();
    expect(alternatingTurns("contents")).toBeUndefined();
  });
});

describe("withAlternatingTurns", () => {
  const toolThenUser: LanguageModelV3Prompt = [
    { role: "tool", content: [] },
    { role: "user", content: [{ type: "text", text: "Thanks" }] },
  ];
  async function sent(body: unknown, prompt?: LanguageModelV3Prompt): Promise<unknown> {
    let seen: unknown;
    const fetch = withAlternatingTurns(async (_input, init) => {
      seen = init?.body;
      return new Response("{}");
    });
    const signal = new AbortController().signal;
    if (prompt) markTurnsToJoin(prompt, signal);
    await fetch("http://gemini.test/v1beta/models/m:generateContent", {
      method: "POST",
      body: body as string,
      signal,
    });
    return seen;
  }

  it("rewrites the body of a call whose prompt has tool results before user text, and no other", async () => {
    const joined = JSON.stringify({
      contents: [
        { role: "model", parts: [{ functionCall: { name: "a" } }] },
        { role: "user", parts: [responsePart("a")] },
        { role: "user", parts: [{ text: "Thanks" }] },
      ],
      generationConfig: { maxOutputTokens: 10 },
    });
    expect(JSON.parse((await sent(joined, toolThenUser)) as string)).toEqual({
      contents: [
        { role: "model", parts: [{ functionCall: { name: "a" } }] },
        { role: "user", parts: [responsePart("a"), { text: "Thanks" }] },
      ],
      generationConfig: { maxOutputTokens: 10 },
    });
    // A call whose prompt needs no join is sent as it is, its body not even parsed.
    expect(await sent(joined)).toBe(joined);
    expect(
      await sent(joined, [
        toolThenUser[1] as LanguageModelV3Prompt[number],
        toolThenUser[0] as LanguageModelV3Prompt[number],
      ]),
    ).toBe(joined);
    const alternating = JSON.stringify({ contents: [{ role: "user", parts: [responsePart("a")] }] });
    expect(await sent(alternating, toolThenUser)).toBe(alternating);
    const plain = JSON.stringify({ contents: [{ role: "user", parts: [{ text: "Hi" }] }] });
    expect(await sent(plain, toolThenUser)).toBe(plain);
    expect(await sent('{"functionResponse": ', toolThenUser)).toBe('{"functionResponse": ');
  });
});
