import { describe, expect, it } from "vitest";
import { chargeUnfinishedCall } from "../chain/call-charge.js";
import { anthropicReportedUsage, geminiReportedUsage, openAIReportedUsage } from "./stream-usage.js";
import type { ReportedUsage } from "./types.js";

/** Folds a stream's raw events through a reader, as the StreamAssembler does. */
function fold(
  reader: (raw: unknown, before: ReportedUsage | undefined) => ReportedUsage | undefined,
  events: unknown[],
): ReportedUsage | undefined {
  let reported: ReportedUsage | undefined;
  for (const event of events) reported = reader(event, reported) ?? reported;
  return reported;
}

describe("usage reported inside a stream", () => {
  it("OpenAI: the usage chunk, cached and OpenRouter's written tokens; `usage: null` chunks say nothing", () => {
    expect(openAIReportedUsage({ choices: [], usage: null }, undefined)).toBeUndefined();
    expect(
      fold(openAIReportedUsage, [
        { choices: [{ delta: { content: "Hi" } }], usage: null },
        {
          choices: [],
          usage: {
            prompt_tokens: 1000,
            completion_tokens: 100,
            prompt_tokens_details: { cached_tokens: 600, cache_write_tokens: 50 },
          },
        },
      ]),
    ).toEqual({ promptTokens: 1000, completionTokens: 100, cachedTokens: 600, cacheWriteTokens: 50 });
  });

  it("Anthropic: message_start's prompt with its cache split, message_delta's output count", () => {
    const start = {
      type: "message_start",
      message: {
        usage: {
          input_tokens: 100,
          cache_read_input_tokens: 800,
          cache_creation_input_tokens: 100,
          output_tokens: 1,
        },
      },
    };
    expect(fold(anthropicReportedUsage, [start])).toEqual({
      promptTokens: 1000,
      completionTokens: 1,
      cachedTokens: 800,
      cacheWriteTokens: 100,
    });
    const delta = {
      type: "message_delta",
      delta: { stop_reason: "end_turn" },
      usage: { output_tokens: 120 },
    };
    expect(fold(anthropicReportedUsage, [start, { type: "ping" }, delta])).toEqual({
      promptTokens: 1000,
      completionTokens: 120,
      cachedTokens: 800,
      cacheWriteTokens: 100,
    });
    // A message_delta that restates the input (as newer API versions do) replaces that count only.
    const restated = { type: "message_delta", usage: { input_tokens: 150, output_tokens: 130 } };
    expect(fold(anthropicReportedUsage, [start, restated])).toEqual({
      promptTokens: 1050,
      completionTokens: 130,
      cachedTokens: 800,
      cacheWriteTokens: 100,
    });
  });

  it("Gemini: usageMetadata on every chunk, the output once known, thoughts included", () => {
    expect(fold(geminiReportedUsage, [{ usageMetadata: { promptTokenCount: 1000 } }])).toEqual({
      promptTokens: 1000,
    });
    expect(
      fold(geminiReportedUsage, [
        { usageMetadata: { promptTokenCount: 1000 } },
        {
          usageMetadata: {
            promptTokenCount: 1000,
            candidatesTokenCount: 80,
            thoughtsTokenCount: 20,
            cachedContentTokenCount: 600,
          },
        },
      ]),
    ).toEqual({ promptTokens: 1000, completionTokens: 100, cachedTokens: 600 });
  });
});

describe("a failed stream's charge with reported usage (ADR 0013, fifth revision)", () => {
  const model = { price: { input_per_mtok: 2, output_per_mtok: 8, cached_input_per_mtok: 0.5 } };
  const call = {
    promptEstimate: 13,
    streamedCharacters: 300,
    wholeAnswerTokens: undefined,
    usage: undefined,
  };

  it("the reported prompt, priced with its cache split; the larger output count", () => {
    expect(
      chargeUnfinishedCall(model, {
        ...call,
        answered: true,
        abandoned: false,
        reported: { promptTokens: 1000, completionTokens: 100, cachedTokens: 600 },
      }),
    ).toEqual({ promptTokens: 1000, completionTokens: 100, costUsd: (400 * 2 + 600 * 0.5 + 100 * 8) / 1e6 });
    expect(
      chargeUnfinishedCall(model, {
        ...call,
        answered: true,
        abandoned: false,
        reported: { promptTokens: 5000, completionTokens: 1 },
      }),
    ).toEqual({ promptTokens: 5000, completionTokens: 75, costUsd: (5000 * 2 + 75 * 8) / 1e6 });
  });

  it("an output count alone keeps the prompt estimate", () => {
    expect(
      chargeUnfinishedCall(model, { ...call, abandoned: true, reported: { completionTokens: 200 } }),
    ).toEqual({ promptTokens: 13, completionTokens: 200, costUsd: (13 * 2 + 200 * 8) / 1e6 });
  });

  it("a report of 0 prompt tokens (a zeroed usage on every chunk) keeps the prompt estimate", () => {
    expect(
      chargeUnfinishedCall(model, {
        ...call,
        answered: true,
        abandoned: false,
        reported: { promptTokens: 0, completionTokens: 0 },
      }),
    ).toEqual({ promptTokens: 13, completionTokens: 75, costUsd: (13 * 2 + 75 * 8) / 1e6 });
  });

  it("a failure that is not charged stays free, reported usage or not", () => {
    expect(
      chargeUnfinishedCall(model, {
        ...call,
        streamedCharacters: 0,
        answered: false,
        abandoned: false,
        reported: { promptTokens: 1000 },
      }),
    ).toEqual({ promptTokens: 0, completionTokens: 0, costUsd: 0 });
  });
});
