import type { ChatRequest } from "@cascade/shared";
import { describe, expect, it } from "vitest";
import { withoutPromptText } from "./prompt-scrub.js";

const request = {
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content: [{ type: "text", text: 'Quote "this" line\nand the next one' }] },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"city":"Par' } }],
    },
    { role: "user", content: "Hi" },
  ],
} as unknown as ChatRequest;

describe("withoutPromptText", () => {
  it.each([
    ["echo: You are terse. (end)", "echo: [redacted] (end)"],
    // As JSON quotes it, and cut short by the upstream.
    [
      `input: ${JSON.stringify(request.messages[1]?.content)}`,
      'input: [{"type":"text","text":"[redacted]"}]',
    ],
    ['got Quote "this" line\nand the ne… (truncated)', "got [redacted]… (truncated)"],
    ['arguments {"city":"Par are not JSON', "arguments [redacted] are not JSON"],
    ["twice: You are terse. You are terse.", "twice: [redacted] [redacted]"],
  ])("scrubs %j", (detail, expected) => {
    expect(withoutPromptText(detail, request)).toBe(expected);
  });

  it("leaves short texts and unrelated words", () => {
    const detail = "HTTP 400: Hi, max_tokens is too large; You are";
    expect(withoutPromptText(detail, request)).toBe(detail);
  });
});
