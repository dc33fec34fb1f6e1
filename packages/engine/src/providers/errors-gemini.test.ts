import {
  APICallError,
  type LanguageModelV3GenerateResult,
  UnsupportedFunctionalityError,
} from "@ai-sdk/provider";
import { describe, expect, it } from "vitest";
import { classifyGeminiError, rejectGeminiRefusal, retryDelayMs } from "./errors-gemini.js";
import { ProviderError } from "./provider-error.js";

/** Builds the APICallError @ai-sdk/google throws: `data` is the parsed body, `responseBody` the raw text. */
function apiError(statusCode: number, body: unknown, headers: Record<string, string> = {}): APICallError {
  const parsed = typeof body === "string" ? undefined : (body as { error?: { message: string } });
  return new APICallError({
    message: parsed?.error?.message ?? "upstream error",
    url: "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
    requestBodyValues: { contents: [{ role: "user", parts: [{ text: "secret prompt" }] }] },
    statusCode,
    responseHeaders: headers,
    responseBody: typeof body === "string" ? body : JSON.stringify(body, null, 2),
    data: parsed,
  });
}

const google = (code: number, status: string, message: string, details?: unknown[]) => ({
  error: { code, message, status, ...(details ? { details } : {}) },
});

const HELP = {
  "@type": "type.googleapis.com/google.rpc.Help",
  links: [
    {
      description: "Learn more about Gemini API quotas",
      url: "https://ai.google.dev/gemini-api/docs/rate-limits",
    },
  ],
};

/** Real Gemini API error bodies, as quoted in GitHub issues (linked). */
const cases: Array<{
  name: string;
  error: unknown;
  reason: ProviderError["reason"];
  providerSpecific?: boolean;
  retryAfterMs?: number;
}> = [
  {
    // RooCodeInc/Roo-Code#3883
    name: "429 RESOURCE_EXHAUSTED waits RetryInfo's retryDelay",
    error: apiError(
      429,
      google(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        [
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [
              {
                quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                quotaId: "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                quotaDimensions: { location: "global", model: "gemini-2.5-flash" },
                quotaValue: "250000",
              },
            ],
          },
          HELP,
          { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "26s" },
        ],
      ),
    ),
    reason: "rate_limited",
    retryAfterMs: 26_000,
  },
  {
    // browserbase/mcp-server-browserbase#129 (paid tier), with a fractional protobuf Duration
    name: "429 with a fractional retryDelay",
    error: apiError(
      429,
      google(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count, limit: 4000000\nPlease retry in 47.434392449s.",
        [HELP, { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "1.5s" }],
      ),
    ),
    reason: "rate_limited",
    retryAfterMs: 1_500,
  },
  {
    // google-gemini/gemini-cli#2020: no details at all
    name: "429 without RetryInfo",
    error: apiError(
      429,
      google(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    ),
    reason: "rate_limited",
  },
  {
    // dyad-sh/dyad#3626
    name: "prepaid credits depleted is a billing fault, not a wait",
    error: apiError(
      429,
      google(
        429,
        "RESOURCE_EXHAUSTED",
        "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your project and billing.",
      ),
    ),
    reason: "auth_error",
  },
  {
    // PublicAffairs/openai-gemini#15
    name: "500 INTERNAL",
    error: apiError(
      500,
      google(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
      ),
    ),
    reason: "server_error",
  },
  {
    // appatalks/eva-agent#50
    name: "503 UNAVAILABLE (model overloaded)",
    error: apiError(503, google(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
    reason: "server_error",
  },
  {
    // continuedev/continue#10639
    name: "503 UNAVAILABLE (high demand)",
    error: apiError(
      503,
      google(
        503,
        "UNAVAILABLE",
        "This model is currently experiencing high demand. Spikes in demand are usually temporary. Please try again later.",
      ),
    ),
    reason: "server_error",
  },
  {
    // letta-ai/letta#2861: Gemini's own deadline, a timeout (retryable, counted for breakers)
    name: "504 DEADLINE_EXCEEDED",
    error: apiError(
      504,
      google(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    ),
    reason: "timeout",
  },
  {
    // google-gemini/gemini-cli#4118
    name: "400 input token count exceeds the maximum",
    error: apiError(
      400,
      google(
        400,
        "INVALID_ARGUMENT",
        "The input token count (132478) exceeds the maximum number of tokens allowed (131072).",
      ),
    ),
    reason: "context_length",
  },
  {
    // continuedev/continue#10290: an invalid key is a 400 INVALID_ARGUMENT; ErrorInfo says which
    name: "400 API_KEY_INVALID",
    error: apiError(
      400,
      google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "API_KEY_INVALID",
          domain: "googleapis.com",
          metadata: { service: "generativelanguage.googleapis.com" },
        },
        {
          "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
          locale: "en-US",
          message: "API key not valid. Please pass a valid API key.",
        },
      ]),
    ),
    reason: "auth_error",
  },
  {
    // continuedev/continue#10513
    name: "403 PERMISSION_DENIED (leaked key)",
    error: apiError(
      403,
      google(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key."),
    ),
    reason: "auth_error",
  },
  {
    // PublicAffairs/openai-gemini#92
    name: "403 PERMISSION_DENIED (no identity)",
    error: apiError(
      403,
      google(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
      ),
    ),
    reason: "auth_error",
  },
  {
    // Xeift/Telegram-Discord-Bot#4: this provider cannot serve us from here; another may
    name: "400 FAILED_PRECONDITION (user location) falls back",
    error: apiError(
      400,
      google(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
    ),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    // wwardaww/gnome-gemini-ai#21
    name: "404 NOT_FOUND model falls back",
    error: apiError(
      404,
      google(
        404,
        "NOT_FOUND",
        "models/gemini-1.0-pro is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.",
      ),
    ),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    // Gemma on the Gemini API rejects a system instruction
    name: "400 feature not enabled for this model falls back",
    error: apiError(
      400,
      google(400, "INVALID_ARGUMENT", "Developer instruction is not enabled for models/gemma-3-27b-it"),
    ),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "400 the caller's malformed request fails the job",
    error: apiError(
      400,
      google(
        400,
        "INVALID_ARGUMENT",
        "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.",
      ),
    ),
    reason: "bad_request",
    providerSpecific: false,
  },
  {
    name: "502 from a proxy in front, with an HTML body",
    error: apiError(502, "<html><body>502 Bad Gateway</body></html>"),
    reason: "server_error",
  },
  {
    name: "a system message the SDK cannot place (thrown before any call)",
    error: new UnsupportedFunctionalityError({
      functionality: "system messages are only supported at the beginning of the conversation",
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    // Not a quoted body: the status alone decides (a proxy's answer before the API).
    name: "413 (a body over the API's size limit) is the prompt's length: falls back",
    error: apiError(413, "Request Entity Too Large"),
    reason: "context_length",
  },
  {
    // Not a quoted body (a status no rule names): any 4xx but 400 and 422 falls back.
    name: "an unnamed 4xx (451) is this provider's refusal: falls back",
    error: apiError(451, "Unavailable For Legal Reasons"),
    reason: "bad_request",
    providerSpecific: true,
  },
];

describe("classifyGeminiError", () => {
  for (const testCase of cases) {
    it(testCase.name, () => {
      const classified = classifyGeminiError(testCase.error);
      expect(classified).toBeInstanceOf(ProviderError);
      expect(classified.reason).toBe(testCase.reason);
      if (testCase.providerSpecific !== undefined)
        expect(classified.providerSpecific).toBe(testCase.providerSpecific);
      if (testCase.retryAfterMs !== undefined) expect(classified.retryAfterMs).toBe(testCase.retryAfterMs);
      expect(classified.message).not.toContain("secret prompt");
    });
  }

  it("keeps the status and Gemini's status name in the message", () => {
    const classified = classifyGeminiError(
      apiError(503, google(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
    );
    expect(classified.httpStatus).toBe(503);
    expect(classified.message).toBe("HTTP 503 UNAVAILABLE: The model is overloaded. Please try again later.");
  });

  it("reads a body Gemini wrapped in an array", () => {
    const classified = classifyGeminiError(
      apiError(429, [
        google(429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later.", [
          { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "38s" },
        ]),
      ]),
    );
    expect(classified.reason).toBe("rate_limited");
    expect(classified.retryAfterMs).toBe(38_000);
  });
});

describe("retryDelayMs", () => {
  it("parses protobuf Durations, rounding up to whole milliseconds", () => {
    const retry = (retryDelay: string) => [
      { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay },
    ];
    expect(retryDelayMs(retry("17s"))).toBe(17_000);
    expect(retryDelayMs(retry("45.837906927s"))).toBe(45_838);
    expect(retryDelayMs(retry("0s"))).toBe(0);
    expect(retryDelayMs(retry("soon"))).toBeUndefined();
    expect(retryDelayMs([HELP])).toBeUndefined();
    expect(retryDelayMs(undefined)).toBeUndefined();
  });
});

describe("rejectGeminiRefusal", () => {
  /** A doGenerate result as @ai-sdk/google returns it, with the raw body it parsed. */
  const answer = (body: unknown, unified = "stop", raw?: string) =>
    ({
      content: [],
      finishReason: { unified, raw },
      usage: {},
      warnings: [],
      response: { body },
    }) as unknown as LanguageModelV3GenerateResult;
  const reasonOf = (result: LanguageModelV3GenerateResult) => {
    try {
      rejectGeminiRefusal(result);
      return undefined;
    } catch (error) {
      return [(error as ProviderError).reason, (error as ProviderError).message];
    }
  };

  it("lets an answer with a candidate through", () => {
    expect(reasonOf(answer({ candidates: [{ finishReason: "STOP", content: {} }] }))).toBeUndefined();
    expect(reasonOf(answer({ candidates: [{}] }))).toBeUndefined();
  });

  it("reads a blocked prompt from promptFeedback, ignoring BLOCK_REASON_UNSPECIFIED", () => {
    expect(reasonOf(answer({ promptFeedback: { blockReason: "PROHIBITED_CONTENT" } }, "other"))).toEqual([
      "content_filter",
      expect.stringContaining("blockReason PROHIBITED_CONTENT"),
    ]);
    expect(
      reasonOf(answer({ promptFeedback: { blockReason: "BLOCK_REASON_UNSPECIFIED" } }, "other")),
    ).toEqual(["invalid_response", "Gemini answered without a candidate"]);
  });

  it("leaves FINISH_REASON_UNSPECIFIED to the shared check of an answer without a finish, and reads a block beside it", () => {
    const unspecified = { candidates: [{ finishReason: "FINISH_REASON_UNSPECIFIED", content: {} }] };
    expect(reasonOf(answer(unspecified, "other", "FINISH_REASON_UNSPECIFIED"))).toBeUndefined();
    expect(
      reasonOf(
        answer(
          { ...unspecified, promptFeedback: { blockReason: "SAFETY" } },
          "other",
          "FINISH_REASON_UNSPECIFIED",
        ),
      ),
    ).toEqual(["content_filter", expect.stringContaining("blockReason SAFETY")]);
    expect(reasonOf(answer({ candidates: [{ finishReason: "OTHER" }] }, "other", "OTHER"))).toEqual([
      "invalid_response",
      expect.stringContaining("finishReason OTHER"),
    ]);
  });

  it("reads a filtered candidate from the finish reason", () => {
    expect(
      reasonOf(answer({ candidates: [{ finishReason: "SAFETY" }] }, "content-filter", "SAFETY")),
    ).toEqual(["content_filter", expect.stringContaining("finishReason SAFETY")]);
  });

  it("calls an answer without a candidate, or of another shape, invalid", () => {
    for (const body of [{}, { candidates: [] }, { candidates: "x" }, undefined, null, "text"]) {
      expect(reasonOf(answer(body))).toEqual(["invalid_response", "Gemini answered without a candidate"]);
    }
  });
});
