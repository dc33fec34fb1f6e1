import { describe, expect, it } from "vitest";
import { alternatingTurns, withAlternatingTurns } from "./gemini-turns.js";

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
  async function sent(body: unknown): Promise<unknown> {
    let seen: unknown;
    const fetch = withAlternatingTurns(async (_input, init) => {
      seen = init?.body;
      return new Response("{}");
    });
    await fetch("http://gemini.test/v1beta/models/m:generateContent", {
      method: "POST",
      body: body as string,
    });
    return seen;
  }

  it("rewrites a body whose function responses sit beside another user turn, and no other", async () => {
    const joined = JSON.stringify({
      contents: [
        { role: "model", parts: [{ functionCall: { name: "a" } }] },
        { role: "user", parts: [responsePart("a")] },
        { role: "user", parts: [{ text: "Thanks" }] },
      ],
      generationConfig: { maxOutputTokens: 10 },
    });
    expect(JSON.parse((await sent(joined)) as string)).toEqual({
      contents: [
        { role: "model", parts: [{ functionCall: { name: "a" } }] },
        { role: "user", parts: [responsePart("a"), { text: "Thanks" }] },
      ],
      generationConfig: { maxOutputTokens: 10 },
    });
    const alternating = JSON.stringify({ contents: [{ role: "user", parts: [responsePart("a")] }] });
    expect(await sent(alternating)).toBe(alternating);
    const plain = JSON.stringify({ contents: [{ role: "user", parts: [{ text: "Hi" }] }] });
    expect(await sent(plain)).toBe(plain);
    expect(await sent('{"functionResponse": ')).toBe('{"functionResponse": ');
  });
});
