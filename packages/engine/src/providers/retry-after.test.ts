import { describe, expect, it } from "vitest";
import { parseDuration, retryAfterMsFromHeaders } from "./retry-after.js";

describe("retryAfterMsFromHeaders", () => {
  it("prefers retry-after-ms, then retry-after seconds or date", () => {
    expect(retryAfterMsFromHeaders({ "retry-after-ms": "1500", "retry-after": "9" })).toBe(1500);
    expect(retryAfterMsFromHeaders({ "Retry-After": "3" })).toBe(3000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMsFromHeaders({ "retry-after": "Thu, 01 Jan 2026 00:00:05 GMT" }, now)).toBe(5000);
  });

  it("reads OpenAI's x-ratelimit-reset-* for the exhausted limit", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m1.5s",
      "x-ratelimit-remaining-tokens": "5000",
      "x-ratelimit-reset-tokens": "20ms",
    };
    expect(retryAfterMsFromHeaders(headers)).toBe(61_500);
    expect(
      retryAfterMsFromHeaders({
        ...headers,
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-remaining-tokens": "0",
      }),
    ).toBe(20);
  });

  it("returns undefined when nothing is said", () => {
    expect(retryAfterMsFromHeaders({})).toBeUndefined();
    expect(retryAfterMsFromHeaders(undefined)).toBeUndefined();
    expect(retryAfterMsFromHeaders({ "retry-after": "soon" })).toBeUndefined();
  });

  it("parses Go-style durations", () => {
    expect(parseDuration("6m0s")).toBe(360_000);
    expect(parseDuration("20ms")).toBe(20);
    expect(parseDuration("1h2m3.5s")).toBe(3_723_500);
    expect(parseDuration("2")).toBe(2000);
    expect(parseDuration("later")).toBeUndefined();
  });
});
