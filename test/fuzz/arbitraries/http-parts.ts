/**
 * Arbitraries for the parts of a request every endpoint shares: who is calling, query strings,
 * the awkward headers, and resource ids. Ids are drawn as a choice ("the n-th resource created
 * so far" or a made-up string) and resolved when the request is sent, so a property can reach
 * resources earlier runs created without the arbitraries depending on mutable state.
 */
import fc from "fast-check";

/** Who sends the request: a tenant's valid key, or a caller with no valid key. */
export type Caller =
  | { kind: "tenant"; tenant: "acme" | "globex" }
  | { kind: "missing" }
  | { kind: "header"; value: string };

/** Printable ASCII, the most node:http lets through in a header value. */
export const headerText = (maxLength = 40) => fc.string({ unit: "grapheme-ascii", maxLength });

/** Mostly a valid tenant key (so requests reach the handlers), sometimes none or a broken one. */
export const callerArbitrary: fc.Arbitrary<Caller> = fc.oneof(
  { weight: 8, arbitrary: fc.constant<Caller>({ kind: "tenant", tenant: "acme" }) },
  { weight: 3, arbitrary: fc.constant<Caller>({ kind: "tenant", tenant: "globex" }) },
  { weight: 1, arbitrary: fc.constant<Caller>({ kind: "missing" }) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.constantFrom("Bearer", "Bearer ", "bearer  x y", "Basic YWNtZTo=", "Token abc", "Bearer\tnope"),
        headerText().map((text) => `Bearer ${text}`),
        headerText(),
      )
      .map((value): Caller => ({ kind: "header", value })),
  },
);

/** A resource id: one created earlier (index into the pool of that kind), or any string. */
export type IdChoice = { kind: "pool"; index: number } | { kind: "literal"; value: string };

const idLiteral = fc.oneof(
  fc.constantFrom("job_1", "file-1", "batch_x", "whd_1", "..", ".", "%2e%2e", "%00", "a%2Fb", "__proto__"),
  fc.stringMatching(/^[A-Za-z0-9_.~-]{1,30}$/),
  // Up to past the 200-character cap every :id schema sets.
  fc.string({ unit: fc.constantFrom("a", "Z", "9", "_", "-"), minLength: 190, maxLength: 260 }),
  fc.string({ unit: "binary", maxLength: 12 }).map((text) => encodeURIComponent(text)),
);

export const idChoiceArbitrary: fc.Arbitrary<IdChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.nat().map((index): IdChoice => ({ kind: "pool", index })) },
  { weight: 2, arbitrary: idLiteral.map((value): IdChoice => ({ kind: "literal", value })) },
);

/** Values that poke at number coercion, enums and dates in query strings. */
const queryValue = fc.oneof(
  fc.constantFrom(
    "",
    "0",
    "1",
    "-1",
    "3",
    "60",
    "61",
    "1e3",
    "1.5",
    "0x10",
    "NaN",
    "Infinity",
    "-0",
    "9".repeat(30),
    "true",
    "null",
    "dead",
    "pending",
    "asc",
    "desc",
    "batch",
    "2026-02-30",
    "2025-01-01",
    "1970-01-01",
    "9999-12-31",
    "0000-00-00",
  ),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 10 }),
);

/**
 * A query string (with its `?`, or empty) over `names`, the endpoint's own parameters plus junk:
 * repeated names become arrays, `name[]` and bare names are fair game.
 */
export function queryArbitrary(names: readonly string[]): fc.Arbitrary<string> {
  const name = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...names, "__proto__", "constructor") },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  );
  const pair = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(name, queryValue).map(([key, value]) => `${enc(key)}=${enc(value)}`) },
    { weight: 1, arbitrary: name.map((key) => enc(key)) },
    { weight: 1, arbitrary: fc.tuple(name, queryValue).map(([key, value]) => `${enc(key)}[]=${enc(value)}`) },
  );
  return fc.array(pair, { maxLength: 4 }).map((pairs) => (pairs.length ? `?${pairs.join("&")}` : ""));
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** encodeURIComponent, except that lone surrogates (which it throws on) become U+FFFD. */
export function enc(text: string): string {
  return encodeURIComponent(text.replace(LONE_SURROGATE, "\uFFFD"));
}

/** Content-Type values: the right one, near misses, and nonsense. */
export const contentTypeArbitrary: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 8, arbitrary: fc.constant("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      "application/json; charset=utf-8",
      "application/json; charset=utf-16",
      "application/JSON",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data",
      "multipart/form-data; boundary=",
      "application/octet-stream",
      "application/json, text/plain",
      "*/*",
      ";",
    ),
  },
  { weight: 1, arbitrary: headerText(30) },
);

/** Extra headers that sometimes change how a request is read; most requests carry none. */
export const extraHeadersArbitrary: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({}) },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        "idempotency-key": fc.oneof(
          { weight: 6, arbitrary: headerText(20).filter((text) => text.length > 0) },
          { weight: 1, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 250, maxLength: 300 }) },
        ),
        "last-event-id": fc.oneof(
          fc.constantFrom("0", "1", "3", "0-0", "0-1", "99999999999999-0", "-1"),
          headerText(20),
        ),
        accept: fc.constantFrom("text/event-stream", "application/json", "*/*", "text/html"),
        "content-encoding": fc.constantFrom("gzip", "identity", "br", "x"),
      },
      { requiredKeys: [] },
    ),
  },
);
