/**
 * Reads how long a provider asks us to wait, from the headers providers actually send:
 * `retry-after-ms` (OpenAI, Azure), `retry-after` (seconds or an HTTP date), and OpenAI-style
 * `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` ("1s", "6m0s", "20ms").
 * https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
 */
/** Response headers with lower-case names (providers and SDKs disagree on case). */
export function lowerCaseHeaders(
  headers: Record<string, string | undefined>,
): Record<string, string | undefined> {
  const lower: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) lower[name.toLowerCase()] = value;
  return lower;
}

export function retryAfterMsFromHeaders(
  headers: Record<string, string | undefined> | undefined,
  now = Date.now(),
): number | undefined {
  if (!headers) return undefined;
  const lower = lowerCaseHeaders(headers);

  const milliseconds = Number(lower["retry-after-ms"]);
  if (lower["retry-after-ms"] && Number.isFinite(milliseconds) && milliseconds >= 0) return milliseconds;

  const retryAfter = lower["retry-after"];
  if (retryAfter) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }

  const requests = parseDuration(lower["x-ratelimit-reset-requests"]);
  const tokens = parseDuration(lower["x-ratelimit-reset-tokens"]);
  const requestsExhausted = lower["x-ratelimit-remaining-requests"] === "0";
  const tokensExhausted = lower["x-ratelimit-remaining-tokens"] === "0";
  if (requestsExhausted && requests !== undefined)
    return tokensExhausted && tokens !== undefined ? Math.max(requests, tokens) : requests;
  if (tokensExhausted && tokens !== undefined) return tokens;
  const known = [requests, tokens].filter((value): value is number => value !== undefined);
  return known.length ? Math.min(...known) : undefined;
}

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses Go-style durations as OpenAI sends them: "1s", "6m0s", "20ms", "1h2m3.5s". */
export function parseDuration(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const plain = Number(value);
  if (Number.isFinite(plain)) return plain * 1000;
  const pattern = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let matched = "";
  for (const match of value.matchAll(pattern)) {
    total += Number(match[1]) * (unitMs[match[2] as string] ?? 0);
    matched += match[0];
  }
  return matched === value.trim() && matched ? total : undefined;
}
