import { APICallError } from "@ai-sdk/provider";
import { describe, expect, it } from "vitest";
import { classifyOpenAIError } from "./errors-openai.js";
import { ProviderError } from "./provider-error.js";

/** Real OpenAI (and compatible servers') error bodies. */
function apiError(statusCode: number, body: unknown, headers: Record<string, string> = {}): APICallError {
  return new APICallError({
    message: "upstream error",
    url: "https://api.openai.com/v1/chat/completions",
    requestBodyValues: { messages: [{ role: "user", content: "secret prompt" }] },
    statusCode,
    responseHeaders: headers,
    responseBody: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const cases: Array<{
  name: string;
  error: unknown;
  reason: ProviderError["reason"];
  providerSpecific?: boolean;
  retryAfterMs?: number;
}> = [
  {
    name: "429 rate limit with retry-after",
    error: apiError(
      429,
      {
        error: {
          message:
            "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
          type: "requests",
          param: null,
          code: "rate_limit_exceeded",
        },
      },
      { "retry-after": "2" },
    ),
    reason: "rate_limited",
    retryAfterMs: 2000,
  },
  {
    name: "429 insufficient quota is a billing fault, not a wait",
    error: apiError(429, {
      error: {
        message: "You exceeded your current quota, please check your plan and billing details.",
        type: "insufficient_quota",
        param: null,
        code: "insufficient_quota",
      },
    }),
    reason: "auth_error",
  },
  {
    name: "500 server error",
    error: apiError(500, {
      error: {
        message: "The server had an error while processing your request. Sorry about that!",
        type: "server_error",
        param: null,
        code: null,
      },
    }),
    reason: "server_error",
  },
  {
    name: "503 overloaded",
    error: apiError(503, {
      error: {
        message: "The engine is currently overloaded, please try again later",
        type: "server_error",
        param: null,
        code: null,
      },
    }),
    reason: "server_error",
  },
  {
    name: "401 invalid key",
    error: apiError(401, {
      error: {
        message:
          "Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
        type: "invalid_request_error",
        param: null,
        code: "invalid_api_key",
      },
    }),
    reason: "auth_error",
  },
  {
    name: "400 context length",
    error: apiError(400, {
      error: {
        message:
          "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
        type: "invalid_request_error",
        param: "messages",
        code: "context_length_exceeded",
      },
    }),
    reason: "context_length",
  },
  {
    name: "400 context length from a compatible server without a code (vLLM)",
    error: apiError(400, {
      object: "error",
      message: "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
      type: "BadRequestError",
      param: null,
      code: 400,
    }),
    reason: "context_length",
  },
  {
    name: "400 Azure content filter",
    error: apiError(400, {
      error: {
        message:
          "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        type: null,
        param: "prompt",
        code: "content_filter",
        status: 400,
      },
    }),
    reason: "content_filter",
  },
  {
    name: "400 unsupported parameter falls back",
    error: apiError(400, {
      error: {
        message:
          "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        type: "invalid_request_error",
        param: "max_tokens",
        code: "unsupported_parameter",
      },
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "400 unsupported value falls back",
    error: apiError(400, {
      error: {
        message:
          "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.",
        type: "invalid_request_error",
        param: "temperature",
        code: "unsupported_value",
      },
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "400 caller's bad request fails the job",
    error: apiError(400, {
      error: {
        message:
          "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got an integer instead.",
        type: "invalid_request_error",
        param: "messages[0].content",
        code: "invalid_type",
      },
    }),
    reason: "bad_request",
    providerSpecific: false,
  },
  {
    name: "404 unknown model on this provider falls back",
    error: apiError(404, {
      error: {
        message: "The model `gpt-5-turbo` does not exist or you do not have access to it.",
        type: "invalid_request_error",
        param: null,
        code: "model_not_found",
      },
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  ...[405, 415, 418, 451].map((status) => ({
    // Only 400 and 422 say the request itself is wrong (contract, "Fall back or fail").
    name: `${status} is this provider's refusal, not the request's fault: falls back`,
    error: apiError(status, {
      error: { message: `upstream says ${status}`, type: "invalid_request_error", param: null, code: null },
    }),
    reason: "bad_request" as const,
    providerSpecific: true,
  })),
  {
    // DeepSeek takes json_object but not json_schema: a provider's gap, another model may do it.
    name: "400 response_format type unavailable (DeepSeek) falls back",
    error: apiError(400, {
      error: {
        message: "This response_format type is unavailable now",
        type: "invalid_request_error",
        param: null,
        code: "invalid_request_error",
      },
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "402 empty balance (DeepSeek) is a billing fault",
    error: apiError(402, {
      error: {
        message: "Insufficient Balance",
        type: "unknown_error",
        param: null,
        code: "invalid_request_error",
      },
    }),
    reason: "auth_error",
  },
  {
    name: "422 Mistral extra inputs falls back",
    error: apiError(422, {
      object: "error",
      message: {
        detail: [
          { type: "extra_forbidden", loc: ["body", "seed"], msg: "Extra inputs are not permitted", input: 1 },
        ],
      },
      type: "invalid_request_message_error",
      param: null,
      code: null,
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "422 validation body: the caller's echoed input is not read as the server's words",
    error: apiError(422, {
      detail: [
        {
          type: "string_too_long",
          loc: ["body", "user"],
          msg: "String too long",
          input: "my context length rant",
        },
      ],
    }),
    reason: "bad_request",
  },
  {
    name: "422 Mistral's bare validation body (detail only) falls back",
    error: apiError(422, {
      detail: [
        { type: "extra_forbidden", loc: ["body", "seed"], msg: "Extra inputs are not permitted", input: 1 },
      ],
    }),
    reason: "bad_request",
    providerSpecific: true,
  },
  {
    name: "400 DashScope data_inspection_failed is content filtering",
    error: apiError(400, {
      error: {
        message: "Input data may contain inappropriate content.",
        type: "data_inspection_failed",
        param: null,
        code: "data_inspection_failed",
      },
    }),
    reason: "content_filter",
  },
  {
    name: "403 OpenRouter moderation is content filtering",
    error: apiError(403, {
      error: {
        code: 403,
        message: 'openai/gpt-4o requires moderation on OpenRouter. Your input was flagged for "harassment".',
        metadata: { reasons: ["harassment"] },
      },
    }),
    reason: "content_filter",
  },
  {
    name: "200 with a malformed body",
    error: new APICallError({
      message: "Invalid JSON response",
      url: "u",
      requestBodyValues: {},
      statusCode: 200,
      responseBody: "{not json",
    }),
    reason: "invalid_response",
  },
  {
    name: "connection refused",
    error: new APICallError({
      message: "Cannot connect to API: connect ECONNREFUSED 127.0.0.1:1",
      url: "u",
      requestBodyValues: {},
      isRetryable: true,
    }),
    reason: "network_error",
  },
];

describe("classifyOpenAIError", () => {
  for (const testCase of cases) {
    it(testCase.name, () => {
      const classified = classifyOpenAIError(testCase.error);
      expect(classified).toBeInstanceOf(ProviderError);
      expect(classified.reason).toBe(testCase.reason);
      if (testCase.providerSpecific !== undefined)
        expect(classified.providerSpecific).toBe(testCase.providerSpecific);
      if (testCase.retryAfterMs !== undefined) expect(classified.retryAfterMs).toBe(testCase.retryAfterMs);
      expect(classified.message).not.toContain("secret prompt");
    });
  }

  it("marks the retryable reasons", () => {
    expect(classifyOpenAIError(cases[0]?.error).isRetryable).toBe(true);
    expect(classifyOpenAIError(cases[5]?.error).isRetryable).toBe(false);
  });
});
