import { describe, expect, it } from "vitest";
import { parseConfigFile } from "../config/load.js";
import { MAX_CUSTOM_ID_LENGTH, parseBatchLine } from "./batch-lines.js";

const config = parseConfigFile(
  {
    providers: { sim: { type: "simulated" } },
    models: { fast: { provider: "sim" } },
    routes: { default: { chain: [{ model: "fast" }] } },
  },
  "test",
);

const lineWith = (customId: string) =>
  JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "fast", messages: [{ role: "user", content: "hi" }] },
  });

describe("a batch line's custom_id", () => {
  it("holds up to 512 characters, counted as characters, not UTF-16 units", () => {
    // 512 emoji are 1,024 UTF-16 units: OpenAI counts (Python's len) 512 characters.
    const emoji = "🙂".repeat(MAX_CUSTOM_ID_LENGTH);
    expect(parseBatchLine(config, "/v1/chat/completions", 1, lineWith(emoji))).toMatchObject({ ok: true });
    expect(parseBatchLine(config, "/v1/chat/completions", 1, lineWith("x".repeat(512)))).toMatchObject({
      ok: true,
    });
    for (const tooLong of [`${emoji}x`, "x".repeat(513), ""]) {
      expect(parseBatchLine(config, "/v1/chat/completions", 3, lineWith(tooLong))).toMatchObject({
        ok: false,
        error: { code: "invalid_custom_id", line: 3, param: "custom_id" },
      });
    }
  });
});

describe("a batch line's param", () => {
  it("names fields as OpenAI does, array elements in brackets, like POST /v1/jobs and the gateway", () => {
    const line = JSON.stringify({
      custom_id: "a",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "fast", messages: [{ role: "user", content: 5 }] },
    });
    const parsed = parseBatchLine(config, "/v1/chat/completions", 1, line);
    expect(parsed).toMatchObject({ ok: false, error: { param: "body.messages[0].content" } });
    expect(parsed.ok ? "" : parsed.error.message).toContain("body.messages[0].content");
  });
});
