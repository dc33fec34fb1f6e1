import { describe, expect, it } from "vitest";
import type { Config } from "./load.js";
import { FULL_REDACTION, redactSecrets } from "./secret-redaction.js";

const ODD_KEY = 'sk-ant/Ab+Cd=Ef"Gh\\Ij&Kl<Mn>Op%Qr';

const config = {
  providerKeys: new Map([
    ["internal", "sk-secret-123456"],
    ["live", "sk-live-SECRETKEY-abc123def456"],
    // A placeholder key (llama.cpp's convention): its words must not be scrubbed from errors.
    ["local", "sk-no-key-required"],
    // Characters a URL or a JSON string writes otherwise (an upstream echoing it encoded).
    ["odd", ODD_KEY],
  ]),
  // X-Title's value is shorter than any secret scrubbed (8): left alone, in any encoding.
  providerHeaders: new Map([["internal", { "X-Team": "team-token-abcdef", "X-Title": "Acme AI" }]]),
  file: {
    providers: {
      internal: {
        type: "openai",
        base_url: "http://vllm.internal:8000/v1",
        headers: { "X-Team": { env: "TEAM_TOKEN" }, "X-Title": { env: "APP_TITLE" } },
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
    // OpenAI's 401 quotes the key's first and last characters around stars.
    [
      "Incorrect API key provided: sk-live-SECRE*************f456. You can find your API key at x.",
      "Incorrect API key provided: [redacted]. You can find your API key at x.",
    ],
    ["key sk-live-****************f456 refused", "key [redacted] refused"],
    ["key sk-l...f456 refused", "key [redacted] refused"],
    ["key sk-live-SEC\u2026 refused", "key [redacted] refused"],
    // Eight characters of a key in a row anywhere, or the key in base64 (a Basic header echoed).
    ["prefix seen: sk-live-SECRE (13 chars)", "prefix seen: [redacted] (13 chars)"],
    ["tail ETKEY-abc123 was sent", "tail [redacted] was sent"],
    [
      `auth: Basic ${Buffer.from("user:sk-live-SECRETKEY-abc123def456").toString("base64")}`,
      "auth: Basic [redacted]",
    ],
    [`b64 ${Buffer.from("sk-live-SECRETKEY-abc123def456").toString("base64")}`, "b64 [redacted]"],
    [`b64url ${Buffer.from("xx:sk-live-SECRETKEY-abc123def456").toString("base64url")}`, "b64url [redacted]"],
    ["echoed Bearer sk-no-key-required", "echoed Bearer [redacted]"],
    // A whole key percent-encoded (a URL or query echoed), in either case of hex, or JSON-escaped.
    [`url-enc=Bearer%20${encodeURIComponent(ODD_KEY)}&x=1`, "url-enc=Bearer%20[redacted]&x=1"],
    [
      `lower=${encodeURIComponent(ODD_KEY).replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase())}`,
      "lower=[redacted]",
    ],
    [`uri=${encodeURI(ODD_KEY)}`, "uri=[redacted]"],
    [`json={"auth":${JSON.stringify(`Bearer ${ODD_KEY}`)}}`, 'json={"auth":"Bearer [redacted]"}'],
    // Python's urllib.parse.quote (leaves "/" alone), Go's JSON (\u0026 \u003c \u003e), an error
    // body as a string inside JSON, a URL encoded twice.
    ["py=sk-ant/Ab%2BCd%3DEf%22Gh%5CIj%26Kl%3CMn%3EOp%25Qr", "py=[redacted]"],
    [String.raw`go=sk-ant/Ab+Cd=Ef\"Gh\\Ij\u0026Kl\u003cMn\u003eOp%Qr`, "go=[redacted]"],
    [`nested=${JSON.stringify(JSON.stringify(ODD_KEY))}`, `nested="\\"[redacted]\\""`],
    [`twice=${encodeURIComponent(encodeURIComponent(ODD_KEY))}`, "twice=[redacted]"],
  ])("scrubs %j", (text, expected) => {
    expect(redactSecrets(config, text, FULL_REDACTION)).toBe(expected);
  });

  it.each([
    "model gpt-4.1 at 12:30:45 (version 1.2.3)",
    "vllm.internal-2 is another host",
    "HTTP 400 invalid_request_error: max_tokens is too large",
    "HTTP 400: Invalid 'messages[0].content': string too long; tools[3] and content[12] too",
    "HTTP 401: sk-proj-****wxyz is not a key we sent; see https://example.com/docs/keys.",
    "HTTP 422: messages: field required; tools.0.function: Field required...required",
    "title Acme AI, Acme%20AI, Acme+AI",
  ])("leaves %j alone", (text) => {
    expect(redactSecrets(config, text, FULL_REDACTION)).toBe(text);
  });

  describe("in text that may echo a tenant's words (no pieces, no hosts)", () => {
    const echo = { keyPieces: undefined, hosts: false };
    it.each([
      [
        "HTTP 400: invalid input: Bearer sk-live-SECRETKEY-abc123def456",
        "HTTP 400: invalid input: Bearer [redacted]",
      ],
      ["echoed x-team: team-token-abcdef", "echoed x-team: [redacted]"],
      [
        `auth: Basic ${Buffer.from("user:sk-live-SECRETKEY-abc123def456").toString("base64")}`,
        "auth: Basic [redacted]",
      ],
      ["connect ECONNREFUSED 10.0.3.7:8000", "connect ECONNREFUSED [provider address]"],
    ])("still scrubs whole secrets and addresses: %j", (text, expected) => {
      expect(redactSecrets(config, text, echo)).toBe(expected);
    });

    it.each([
      // Pieces and masked forms of "sk-live-SECRETKEY-abc123def456" a tenant could have sent.
      "HTTP 400: invalid input: sk-live-SECRE ETKEY-abc123 KEY-abc1 abc123def45",
      "HTTP 400: invalid input: sk-live-SECRE*************f456 sk-l...f456",
      `HTTP 400: invalid input: ${Buffer.from("sk-live-SECRETKEY").toString("base64")}`,
      "HTTP 400: invalid input: vllm.internal acme-east-private.example.net",
    ])("matches no piece of a key and no host a tenant could probe for: %j", (text) => {
      expect(redactSecrets(config, text, echo)).toBe(text);
    });
  });

  it("in an auth failure, matches pieces of the key that call sent only", () => {
    const scope = { keyPieces: "sk-live-SECRETKEY-abc123def456", hosts: false };
    expect(redactSecrets(config, "key sk-live-****************f456 refused", scope)).toBe(
      "key [redacted] refused",
    );
    expect(redactSecrets(config, "prefix seen: sk-live-SECRE", scope)).toBe("prefix seen: [redacted]");
    // Another provider's key, in part: not this call's, not matched.
    expect(redactSecrets(config, "seen: sk-secret-12", scope)).toBe("seen: sk-secret-12");
  });
});
