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

  it("finds quotes in Python's repr, cut in the middle (pydantic), \\u-escaped, and of tool names", () => {
    const merger = 'Draft the "secret" merger letter\nfor pelican-quartz-9120';
    const ask = (content: string, tools?: unknown) =>
      ({ messages: [{ role: "user", content }], ...(tools ? { tools } : {}) }) as unknown as ChatRequest;
    // LiteLLM: a Python repr of the messages.
    const repr = `litellm.BadRequestError: {'role': 'user', 'content': 'Draft the "secret" merger letter\\nfor pelican-quartz-9120'}`;
    expect(withoutPromptText(repr, ask(merger))).not.toContain("pelican");
    // pydantic (vLLM): input_value cut in the middle.
    const long = "Translate the confidential memo about walrus-saffron-4402 for the board";
    const cut =
      "Input should be a valid dictionary [type=dict_type, input_value='Translate the confi...ffron-4402 for the board', input_type=str]";
    const scrubbed = withoutPromptText(cut, ask(long));
    expect(scrubbed).not.toContain("walrus");
    expect(scrubbed).not.toContain("ffron-4402 for the board");
    expect(scrubbed).not.toContain("Translate the confi");
    // json.dumps with ensure_ascii.
    const accented = "Résumé of the café négociations à Genève";
    const escaped = `bad input: ${JSON.stringify(accented).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}`;
    expect(escaped).toContain("\\u00e9");
    expect(withoutPromptText(escaped, ask(accented))).not.toMatch(/caf|Gen/);
    // OpenAI quotes a tool's name.
    const tools = [{ type: "function", function: { name: "lookup_acquisition_target", parameters: {} } }];
    const schema = "Invalid schema for function 'lookup_acquisition_target': schema must be a JSON Schema";
    expect(withoutPromptText(schema, ask("hello there", tools))).toBe(
      "Invalid schema for function '[redacted]': schema must be a JSON Schema",
    );
  });

  it("scrubs a prompt with backslashes quoted as written, and leaves the rest of the text as it was", () => {
    const latex = "Prove that \\theta = \\frac{\\pi}{2} when \\nabla f = 0 for the secret project walrus";
    const ask = { messages: [{ role: "user", content: latex }] } as unknown as ChatRequest;
    expect(withoutPromptText(`input: ${latex} (end)`, ask)).toBe("input: [redacted] (end)");
    // JSON-quoted: its escapes doubled; the rest of the text keeps its own escapes.
    const quoted = `{"error":"bad \\"field\\"\\n line2"} input: ${JSON.stringify(latex)}`;
    expect(withoutPromptText(quoted, ask)).toBe('{"error":"bad \\"field\\"\\n line2"} input: "[redacted]"');
  });

  it("takes a short text (a tool's name) only as a word of its own", () => {
    const tools = [{ type: "function", function: { name: "search", parameters: {} } }];
    const ask = { messages: [{ role: "user", content: "hello there" }], tools } as unknown as ChatRequest;
    expect(withoutPromptText("'search' failed; search_results and messages[1].research are fine", ask)).toBe(
      "'[redacted]' failed; search_results and messages[1].research are fine",
    );
  });

  it("leaves short texts and unrelated words", () => {
    const detail = "HTTP 400: Hi, max_tokens is too large; You are";
    expect(withoutPromptText(detail, request)).toBe(detail);
  });
});
