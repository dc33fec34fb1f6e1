import { describe, expect, it } from "vitest";
import type { Config } from "./load.js";
import { redactSecrets } from "./secret-redaction.js";

const config = {
  providerKeys: new Map([["internal", "sk-secret-123456"]]),
  providerHeaders: new Map([["internal", { "X-Team": "team-token-abcdef" }]]),
  file: {
    providers: {
      internal: {
        type: "openai",
        base_url: "http://vllm.internal:8000/v1",
        headers: { "X-Team": { env: "TEAM_TOKEN" } },
      },
      loopback: { type: "openai", base_url: "http://[::1]:9/v1" },
      sim: { type: "simulated" },
    },
    models: {
      pooled: {
        deployments: [
          { id: "east", provider: "internal", base_url: "https://acme-east-private.example.net/v1" },
        ],
      },
    },
  },
} as unknown as Config;

describe("redactSecrets", () => {
  it.each([
    [
      "HTTP 401: Incorrect API key provided: Bearer sk-secret-123456",
      "HTTP 401: Incorrect API key provided: Bearer [redacted]",
    ],
    ["echoed x-team: team-token-abcdef", "echoed x-team: [redacted]"],
    [
      "Cannot connect to API: connect ECONNREFUSED 127.0.0.1:9",
      "Cannot connect to API: connect ECONNREFUSED [provider address]",
    ],
    ["connect ECONNREFUSED ::1:9", "connect ECONNREFUSED [provider address]"],
    ["connect EHOSTUNREACH fe80::1%eth0:443", "connect EHOSTUNREACH [provider address]"],
    ["[2001:db8::1]:443 refused", "[provider address] refused"],
    ["getaddrinfo ENOTFOUND vllm.internal", "getaddrinfo ENOTFOUND [provider address]"],
    [
      "request to http://vllm.internal:8000/v1/chat/completions failed",
      "request to http://[provider address]/v1/chat/completions failed",
    ],
    ["getaddrinfo ENOTFOUND acme-east-private.example.net", "getaddrinfo ENOTFOUND [provider address]"],
    ["Rate limit for 10.0.0.1.", "Rate limit for [provider address]."],
    [
      "connect ECONNREFUSED 2600:1f18:243e:7b00:c1c4:9a5e:5b3d:2f1c:443",
      "connect ECONNREFUSED [provider address]",
    ],
  ])("scrubs %j", (text, expected) => {
    expect(redactSecrets(config, text)).toBe(expected);
  });

  it.each([
    "model gpt-4.1 at 12:30:45 (version 1.2.3)",
    "vllm.internal-2 is another host",
    "HTTP 400 invalid_request_error: max_tokens is too large",
    "HTTP 400: Invalid 'messages[0].content': string too long; tools[3] and content[12] too",
  ])("leaves %j alone", (text) => {
    expect(redactSecrets(config, text)).toBe(text);
  });
});
