import { describe, expect, it } from "vitest";
import { isOlderGemini } from "./gemini.js";

describe("isOlderGemini", () => {
  it("reads Gemini 1.x and 2.x names, with or without models/, as older", () => {
    for (const name of [
      "gemini-2.5-flash",
      "gemini-2.5-flash-lite",
      "gemini-2.0-flash-001",
      "models/gemini-1.5-pro",
      "gemini-1.0-pro",
      "gemini-pro",
      "gemini-pro-vision",
      "GEMINI-2.5-PRO",
    ])
      expect(isOlderGemini(name), name).toBe(true);
  });

  it("leaves Gemini 3, the -latest aliases and other names alone", () => {
    for (const name of [
      "gemini-3-flash-preview",
      "models/gemini-3-pro",
      "gemini-flash-latest",
      "gemini-pro-latest",
      "gemini-20-flash",
      "up-gemini",
      "gemma-3-27b-it",
    ])
      expect(isOlderGemini(name), name).toBe(false);
  });
});
