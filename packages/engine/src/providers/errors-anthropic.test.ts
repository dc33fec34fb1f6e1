import { APICallError, UnsupportedFunctionalityError } from "@ai-sdk/provider";
import { describe, expect, it } from "vitest";
import { anthropicResetMs, classifyAnthropicError } from "./errors-anthropic.js";
import { ProviderError } from "./provider-error.js";

const NOW = Date.parse("2026-11-24T12:00:00Z");

/**
 * Builds the APICallError @ai-sdk/anthropic throws: `data` is its zod-parsed copy of the body
 * (only `type` and `error.{type,message}` survive), `responseBody` the raw text.
 */
function apiError(statusCode: number, body: unknown, headers: Record<string, string> = {}): APICallError {
  const parsed =
    typeof body === "string" ? undefined : (body as { error?: { type: string; message: string } });
  return new APICallError({
    message: parsed?.error?.message ?? "upstream error",
    url: "https://api.anthropic.com/v1/messages",
    requestBodyValues: {
      model: "claude-sonnet-4-5",
      max_tokens: 4096,
      messages: [{ role: "user", content: "secret prompt" }],
    },
    statusCode,
    responseHeaders: headers,
    responseBody: typeof body === "string" ? body : JSON.stringify(body),
    data: parsed?.error
      ? { type: "error", error: { type: parsed.error.type, message: parsed.error.message } }
      : undefined,
  });
}

const anthropic = (type: string, message: string, extra: Record<string, unknown> = {}) => ({
  type: "error",
  error: { type, message, ...extra },
  request_id: "req_011CSHoEeqs5C35K2UUqR7Fy",
});

/** Real Anthropic error bodies, as quoted in Anthropic's docs and in GitHub issues (linked). */
const cases: Array<{
  name: string;
  error: unknown;
  reason: ProviderError["reason"];
  providerSpecific?: boolean;
  retryAfterMs?: number;
}> = [
  {
    // https://docs.anthropic.com/en/api/rate-limits (429 carries retry-after)
    name: "429 rate_limit_error with retry-after",
    error: apiError(
      429,
      anthropic(
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
      ),
      { "retry-after": "23", "anthropic-ratelimit-tokens-remaining": "0" },
    ),
    reason: "rate_limited",
    retryAfterMs: 23_000,
  },
  {
    // anthropics/claude-code#55789; no retry-after: the exhausted limit's reset timestamp is the wait
    name: "429 without retry-after waits for the exhausted limit's RFC 3339 reset",
    error: apiError(
      429,
      anthropic(
        "rate_limit_error",
        "This request would exceed your account's rate limit. Please try again later.",
      ),
      {
        "anthropic-ratelimit-requests-remaining": "12",
        "anthropic-ratelimit-requests-reset": "2026-11-24T12:00:02Z",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2026-11-24T12:00:17Z",
        "anthropic-ratelimit-output-tokens-remaining": "8000",
        "anthropic-ratelimit-output-tokens-reset": "2026-11-24T12:00:01Z",
      },
    ),
    reason: "rate_limited",
    retryAfterMs: 17_000,
  },
  {
    // https://platform.claude.com/docs/en/api/rate-limits: the tier's monthly cap is a
    // rate_limit_error without retry-after; `details` survives only in the raw body
    name: "429 enforced spend limit is a billing fault, not a wait",
    error: apiError(
      429,
      anthropic(
        "rate_limit_error",
        "You have reached your API usage limits: your organization has crossed its monthly API usage threshold, set based on your organization's API tier. You will regain access on 2026-09-01 at 00:00 UTC.",
        { details: { error_code: "enforced_spend_limit_reached" } },
      ),
    ),
    reason: "auth_error",
  },
  {
    // https://docs.anthropic.com/en/api/errors: a spend limit the organisation set itself is a 400
    name: "400 specified API usage limits reached is a billing fault",
    error: apiError(
      400,
      anthropic(
        "invalid_request_error",
        "You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
      ),
    ),
    reason: "auth_error",
  },
  {
    // https://docs.anthropic.com/en/api/errors ; the contract: Anthropic 529 is server_error
    name: "529 overloaded_error",
    error: apiError(529, anthropic("overloaded_error", "Overloaded")),
    reason: "server_error",
  },
  {
    name: "500 api_error",
    error: apiError(500, anthropic("api_error", "Internal server error")),
    reason: "server_error",
  },
  {
    name: "504 timeout_error",
    error: apiError(504, anthropic("timeout_error", "Request timeout")),
    reason: "timeout",
  },
  {
    // anthropics/claude-code issues ("prompt is too long: 208310 tokens > 200000 maximum")
    name: "400 prompt is too long",
    error: apiError(
      400,
      anthropic("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
    ),
    reason: "context_length",
  },
  {
    // docker/docker-agent#569
    name: "400 input + max_tokens exceed the context limit",
    error: apiError(
      400,
      anthropic(
        "invalid_request_error",
        "input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000, decrease input length or `max_tokens` and try again",
      ),
    ),
    reason: "context_length",
  },
  {
    // https://docs.anthropic.com/en/api/errors#request-size-limits (answered by Cloudflare)
    name: "413 request_too_large",
    error: apiError(
      413,
      anthropic("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    ),
    reason: "context_length",
  },
  {
    // anthropics/claude-code#37547
    name: "400 output blocked by the content filtering policy",
    error: apiError(400, anthropic("invalid_request_error", "Output blocked by content filtering policy")),
    reason: "content_filter",
  },
  {
    name: "401 authentication_error",
    error: apiError(401, anthropic("authentication_error", "invalid x-api-key")),
    reason: "auth_error",
  },
  {
    name: "403 permission_error",
    error: apiError(
      403,
      anthropic("permission_error", "Your API key does not have permission to use the specified resource."),
    ),
    reason: "auth_error",
  },
  {
    name: "402 billing_error",
    error: apiError(402, anthropic("billing_error", "Billing error")),
    reason: "auth_error",
  },
  {
    // anthropics/claude-code#66314
    name: "400 credit balance too low is a billing fault",
    error: apiError(
      400,
      anthropic(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
      ),
    ),
    reason: "auth_error",
  },
  {
    // BerriAI/litellm#15097: what this model rejects, another may accept
    name: "400 temperature and top_p together falls back",
    error: apiError(
      400,
      anthropic(
        "invalid_request_error",
        "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
      ),
    ),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    // ChatGPTNextWeb/NextChat#4964
    name: "400 max_tokens above this model's output ceiling falls back",
    error: apiError(
      400,
      anthropic(
        "invalid_request_error",
        "max_tokens: 10000 > 4096, which is the maximum allowed number of output tokens for claude-3-5-sonnet-20240620",
      ),
    ),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    // Anthropic's docs, errors page example
    name: "400 the caller's malformed conversation fails the job",
    error: apiError(
      400,
      anthropic("invalid_request_error", 'messages: roles must alternate between "user" and "assistant"'),
    ),
    reason: "bad_request",
    providerSpecific: false,
  },
  {
    // mattermost/mattermost-plugin-agents#257
    name: "404 not_found_error for the model falls back",
    error: apiError(404, anthropic("not_found_error", "model: claude-3-5-sonnet-20241022 ")),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "502 from a proxy in front, with an HTML body",
    error: apiError(502, "<html><body>502 Bad Gateway</body></html>"),
    reason: "server_error",
  },
  {
    name: "connection refused",
    error: new APICallError({
      message: "Cannot connect to API: connect ECONNREFUSED 127.0.0.1:1",
      url: "u",
      requestBodyValues: { messages: [{ role: "user", content: "secret prompt" }] },
      isRetryable: true,
    }),
    reason: "network_error",
  },
  {
    name: "a request shape the SDK cannot send (thrown before any call)",
    error: new UnsupportedFunctionalityError({ functionality: "media type: audio/wav" }),
    reason: "bad_request",
    providerSpecific: true,
  },
];

describe("classifyAnthropicError", () => {
  for (const testCase of cases) {
    it(testCase.name, () => {
      const classified = classifyAnthropicError(testCase.error, NOW);
      expect(classified).toBeInstanceOf(ProviderError);
      expect(classified.reason).toBe(testCase.reason);
      if (testCase.providerSpecific !== undefined)
        expect(classified.providerSpecific).toBe(testCase.providerSpecific);
      if (testCase.retryAfterMs !== undefined) expect(classified.retryAfterMs).toBe(testCase.retryAfterMs);
      expect(classified.message).not.toContain("secret prompt");
    });
  }

  it("keeps the status and Anthropic's error type in the message", () => {
    const classified = classifyAnthropicError(apiError(529, anthropic("overloaded_error", "Overloaded")));
    expect(classified.httpStatus).toBe(529);
    expect(classified.message).toBe("HTTP 529 overloaded_error: Overloaded");
    expect(classified.isRetryable).toBe(true);
  });
});

describe("anthropicResetMs", () => {
  it("takes the latest reset among exhausted limits, else the earliest of all", () => {
    expect(
      anthropicResetMs(
        {
          "anthropic-ratelimit-requests-remaining": "0",
          "anthropic-ratelimit-requests-reset": "2026-11-24T12:00:03Z",
          "anthropic-ratelimit-tokens-remaining": "0",
          "anthropic-ratelimit-tokens-reset": "2026-11-24T12:00:09.5Z",
        },
        NOW,
      ),
    ).toBe(9_500);
    expect(
      anthropicResetMs(
        {
          "Anthropic-RateLimit-Requests-Reset": "2026-11-24T12:00:04Z",
          "anthropic-ratelimit-output-tokens-reset": "2026-11-24T12:00:02Z",
        },
        NOW,
      ),
    ).toBe(2_000);
  });

  it("never waits a negative time and ignores what it cannot parse", () => {
    expect(anthropicResetMs({ "anthropic-ratelimit-requests-reset": "2026-11-24T11:59:00Z" }, NOW)).toBe(0);
    expect(anthropicResetMs({ "anthropic-ratelimit-requests-reset": "soon" }, NOW)).toBeUndefined();
    expect(anthropicResetMs(undefined, NOW)).toBeUndefined();
  });
});
