import { describe, expect, it } from "vitest";
import { costUsd, estimateMaxTokens, estimatePromptTokens, usageCostUsd } from "./estimate.js";
import { chatRequestSchema } from "./schemas/chat-request.js";

describe("estimates (contract: ceil(chars / 4) + 85 per image + 10 per message)", () => {
  it("counts text, images and messages", () => {
    const request = chatRequestSchema.parse({
      messages: [
        { role: "system", content: "12345678" },
        {
          role: "user",
          content: [
            { type: "text", text: "abcd" },
            { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
          ],
        },
      ],
    });
    expect(estimatePromptTokens(request)).toBe(Math.ceil(12 / 4) + 85 + 20);
  });

  it("uses 1024 output tokens when max_tokens is missing", () => {
    const request = chatRequestSchema.parse({ messages: [{ role: "user", content: "hi" }] });
    expect(estimateMaxTokens(request)).toBe(1024);
    expect(estimateMaxTokens({ ...request, max_completion_tokens: 7, max_tokens: 9 })).toBe(7);
  });

  it("prices tokens per million", () => {
    expect(costUsd({ price: { input_per_mtok: 2.5, output_per_mtok: 10 } }, 1000, 100)).toBeCloseTo(
      0.0035,
      10,
    );
    expect(costUsd({}, 1000, 100)).toBe(0);
  });

  it("prices cache reads and writes at their own prices when set, else as input", () => {
    const usage = { promptTokens: 1240, completionTokens: 12, cachedTokens: 1000, cacheWriteTokens: 200 };
    const plain = { price: { input_per_mtok: 3, output_per_mtok: 15 } };
    expect(usageCostUsd(plain, usage)).toBe(costUsd(plain, 1240, 12));
    const cached = { price: { ...plain.price, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75 } };
    expect(usageCostUsd(cached, usage)).toBeCloseTo((40 * 3 + 1000 * 0.3 + 200 * 3.75 + 12 * 15) / 1e6, 12);
    const readsOnly = { price: { ...plain.price, cached_input_per_mtok: 0.3 } };
    expect(usageCostUsd(readsOnly, usage)).toBeCloseTo((240 * 3 + 1000 * 0.3 + 12 * 15) / 1e6, 12);
    expect(usageCostUsd({}, usage)).toBe(0);
  });
});
