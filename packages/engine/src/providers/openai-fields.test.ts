import { describe, expect, it } from "vitest";
import { forwardsOpenAIFields } from "./openai.js";

describe("forwardsOpenAIFields", () => {
  it("forwards OpenAI's own fields to OpenAI and Azure OpenAI by default, to no other endpoint", () => {
    expect(forwardsOpenAIFields({})).toBe(true);
    expect(forwardsOpenAIFields({ base_url: "https://api.openai.com/v1" })).toBe(true);
    expect(forwardsOpenAIFields({ base_url: "https://acme.openai.azure.com/openai/v1" })).toBe(true);
    expect(forwardsOpenAIFields({ base_url: "https://acme.cognitiveservices.azure.com/openai/v1" })).toBe(
      true,
    );
    expect(forwardsOpenAIFields({ base_url: "https://acme.services.ai.azure.com/openai/v1" })).toBe(true);
    // The same hosts' model-inference endpoints serve other vendors' models.
    expect(forwardsOpenAIFields({ base_url: "https://acme.services.ai.azure.com/models" })).toBe(false);
    expect(forwardsOpenAIFields({ base_url: "https://api.deepseek.com" })).toBe(false);
    expect(forwardsOpenAIFields({ base_url: "http://127.0.0.1:11434/v1" })).toBe(false);
  });

  it("does as `openai_fields` says when it is set", () => {
    expect(forwardsOpenAIFields({ base_url: "https://openrouter.ai/api/v1", openai_fields: "forward" })).toBe(
      true,
    );
    expect(forwardsOpenAIFields({ base_url: "https://api.openai.com/v1", openai_fields: "drop" })).toBe(
      false,
    );
  });
});
