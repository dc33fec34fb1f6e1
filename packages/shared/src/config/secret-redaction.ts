import type { Config } from "./load.js";

/** Shorter values are not scrubbed: they would match ordinary words and numbers. */
const MIN_SECRET_LENGTH = 8;
const REDACTED = "[redacted]";
/**
 * A run of key-like characters holding this many characters of an API key in a row (or of its
 * base64) is taken for that key, whole: providers quote keys partly (OpenAI's "Incorrect API key
 * provided: sk-proj-****…8xYA"), and any piece is a fingerprint of it.
 */
const KEY_PIECE_LENGTH = 8;
/** A masked key's visible ends: at least this much of a key's start or end beside the mask. */
const MIN_MASKED_END = 4;
/** Runs of characters a key, its base64, or a masked form of it is written with. */
const KEY_LIKE_RUN = /[\w+/=*.\u2026-]+/g;
/** The mask inside a quoted key: `***`, `...` or `…`. */
const MASK = /\*{3,}|\.{3,}|\u2026/;

/**
 * What `redactSecrets` matches beyond whole secrets and IP addresses. Anything less than a whole
 * secret is matched only where the text cannot hold the tenant's own words: where a tenant's
 * request or a model's answer can be echoed (a 400 quoting the prompt, a 5xx, an unreadable
 * answer), which of its words come back scrubbed would tell the tenant which are pieces of a key,
 * and a key could be read off piece by piece (a black-box probe read a whole OpenAI key in 311
 * gateway requests that way, 8 characters a window); a host name, whole, could be confirmed.
 */
export interface RedactionScope {
  /**
   * The key whose pieces (8 characters in a row, of it or its base64) and masked forms are matched
   * too, as an auth failure quotes the key it was sent; `"all"`: every configured key's.
   */
  keyPieces: string | "all" | undefined;
  /** The configured `base_url` hosts, as Node's network errors name them. */
  hosts: boolean;
}

/** Everything: for text no tenant or model had a word in. */
export const FULL_REDACTION: RedactionScope = { keyPieces: "all", hosts: true };

const redactors = new WeakMap<Config, (text: string, scope: RedactionScope) => string>();

/**
 * `text` (an upstream's error body, as the attempt's message and the log's `detail` carry it)
 * without any secret the config sends upstream: provider and deployment API keys, and header
 * values read from the environment. Some OpenAI-compatible servers and proxies echo the request's
 * `Authorization` header in their errors, and what a tenant reads must never hold our key.
 * Nor where the operator's providers live: the host names of the configured `base_url`s and IP
 * addresses (Node's network errors name the address they could not reach, `connect ECONNREFUSED
 * 10.0.3.7:8000`) become `[provider address]`; the provider's id already says which one it was.
 * Whole secrets are also scrubbed percent-encoded and escaped (echoedSecretPattern), API keys in
 * base64 (a Basic header echoed), and, where `scope` allows it,
 * where only part of one is quoted (KEY_PIECE_LENGTH characters of it in a row, or a masked form
 * showing its start or end); host names too only where `scope` allows (see RedactionScope).
 */
export function redactSecrets(config: Config, text: string, scope: RedactionScope): string {
  let redact = redactors.get(config);
  if (!redact) {
    redact = redactorFor(config);
    redactors.set(config, redact);
  }
  return redact(text, scope);
}

const ADDRESS = "[provider address]";
/**
 * IPv4 with an optional port (an address ending a sentence too); IPv6 in brackets (two colons at
 * least, so `messages[0]` is left alone), in full (eight groups), or compressed (`::1`,
 * `fe80::7%eth0`), each with an optional port.
 */
const IP_ADDRESS = new RegExp(
  [
    String.raw`(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\w|\.\d)`,
    String.raw`\[[0-9a-fA-F.]*:[0-9a-fA-F.]*:[\w:.%-]*\](?::\d{1,5})?`,
    String.raw`(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?:%[\w.-]+)?(?::\d{1,5})?(?![\w:])`,
    String.raw`(?<![\w:])(?:[0-9a-fA-F]{1,4})?(?::[0-9a-fA-F]{1,4})*::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?:\.\d{1,3}){0,3}(?:%[\w.-]+)?(?::\d{1,5})?(?![\w:])`,
  ].join("|"),
  "g",
);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function addHost(hosts: Set<string>, baseUrl: string | undefined): void {
  if (!baseUrl) return;
  try {
    const host = new URL(baseUrl).hostname.replace(/^\[|\]$/g, "");
    if (host) hosts.add(host);
  } catch {
    // The config's schema checked it; nothing to scrub if it did not parse here.
  }
}

/**
 * `secret` in base64 and base64url as it reads inside any longer encoded text: the encoding at
 * each of the three byte alignments, less the characters that depend on the bytes around it.
 */
function base64Forms(secret: string): string[] {
  const forms: string[] = [];
  for (const [pad, skip] of [
    ["", 0],
    ["\0", 2],
    ["\0\0", 3],
  ] as const) {
    const encoded = Buffer.from(pad + secret)
      .toString("base64")
      .replace(/=+$/, "");
    const inner = encoded.slice(skip, -2);
    forms.push(inner, inner.replaceAll("+", "-").replaceAll("/", "_"));
  }
  return forms;
}

/** A hex number's pattern, its letters in either case. */
function hexPattern(hex: string): string {
  return [...hex].map((digit) => (/[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit)).join("");
}

/**
 * A pattern of `secret` as an upstream may echo it, each character that is not a letter or a digit
 * in any of the forms encoders write it in: raw or backslash-escaped (JSON's `\"` and `\\`, a JSON
 * string inside JSON too), percent-encoded (once or twice, hex in either case: whatever characters
 * the encoder leaves alone, JavaScript's encodeURIComponent and encodeURI, Python's quote, Go's
 * QueryEscape alike), as a `\uXXXX` escape (Go's JSON writes `&<>` so), and a space as `+`.
 * Backslashes are bounded (7: JSON three strings deep), so that a tenant's prompt of backslashes
 * echoed in an error costs a bounded look at each position, not a scan of the run.
 */
function echoedSecretPattern(secret: string): string {
  let source = "";
  for (const char of secret) {
    if (/^[A-Za-z0-9]$/.test(char)) {
      source += char;
      continue;
    }
    const percent = [...Buffer.from(char)].map(
      (byte) => `%(?:25)?${hexPattern(byte.toString(16).padStart(2, "0"))}`,
    );
    const units = Array.from(
      { length: char.length },
      (_, at) => String.raw`\\{1,7}u${hexPattern(char.charCodeAt(at).toString(16).padStart(4, "0"))}`,
    );
    const forms = [String.raw`\\{0,7}${escapeRegExp(char)}`, percent.join(""), units.join("")];
    if (char === " ") forms.push(String.raw`\+`);
    source += `(?:${forms.join("|")})`;
  }
  return source;
}

/**
 * Whether part of a key reads like a random string (a digit, or both cases) rather than a word:
 * only such parts are matched, so a placeholder key (`sk-no-key-required`) does not take every
 * `required` in an error with it. A key is still scrubbed whole wherever it appears.
 */
function looksRandom(part: string): boolean {
  return /\d/.test(part) || (/[a-z]/.test(part) && /[A-Z]/.test(part));
}

/** Tells whether a run of key-like characters holds a whole key in base64. */
function encodedKeyFinder(keys: readonly string[]): ((run: string) => boolean) | undefined {
  const encoded = keys.flatMap(base64Forms).filter((form) => form.length >= KEY_PIECE_LENGTH);
  if (encoded.length === 0) return undefined;
  return (run) => run.length >= KEY_PIECE_LENGTH && encoded.some((form) => run.includes(form));
}

/** Tells whether a run of key-like characters quotes one of `keys` in part: a piece of it, or a masked form. */
function keyPieceFinder(keys: readonly string[]): ((run: string) => boolean) | undefined {
  if (keys.length === 0) return undefined;
  const pieces = new Set<string>();
  for (const key of keys) {
    for (const form of [key, ...base64Forms(key)]) {
      for (let start = 0; start + KEY_PIECE_LENGTH <= form.length; start++) {
        const piece = form.slice(start, start + KEY_PIECE_LENGTH);
        if (looksRandom(piece)) pieces.add(piece);
      }
    }
  }
  const masked = (run: string): boolean => {
    const mask = MASK.exec(run);
    if (!mask) return false;
    const before = run.slice(0, mask.index);
    const after = run.slice(mask.index + mask[0].length).replace(/[.*\u2026]+$/, "");
    const start = before.length >= MIN_MASKED_END && looksRandom(before);
    const end = after.length >= MIN_MASKED_END && looksRandom(after);
    return keys.some((key) => (start && key.startsWith(before)) || (end && key.endsWith(after)));
  };
  return (run) => {
    if (run.length >= KEY_PIECE_LENGTH) {
      for (let start = 0; start + KEY_PIECE_LENGTH <= run.length; start++) {
        if (pieces.has(run.slice(start, start + KEY_PIECE_LENGTH))) return true;
      }
    }
    return masked(run);
  };
}

function redactorFor(config: Config): (text: string, scope: RedactionScope) => string {
  const keys = [...new Set(config.providerKeys.values())].filter((key) => key.length >= MIN_SECRET_LENGTH);
  const quotesEncodedKey = encodedKeyFinder(keys);
  const quotesAnyKeyPiece = keyPieceFinder(keys);
  /** Piece finders of single keys, made on first use (a provider's 401). */
  const pieceFinders = new Map<string, ((run: string) => boolean) | undefined>();
  const pieceFinderOf = (key: string | "all" | undefined) => {
    if (key === undefined) return undefined;
    if (key === "all") return quotesAnyKeyPiece;
    if (!pieceFinders.has(key))
      pieceFinders.set(key, key.length >= MIN_SECRET_LENGTH ? keyPieceFinder([key]) : undefined);
    return pieceFinders.get(key);
  };
  const secrets = new Set<string>(keys);
  const hosts = new Set<string>();
  for (const [id, provider] of Object.entries(config.file.providers)) {
    const resolved = config.providerHeaders.get(id);
    for (const [name, value] of Object.entries(provider.headers ?? {})) {
      const secret = typeof value === "string" ? undefined : resolved?.[name];
      if (secret) secrets.add(secret);
    }
    addHost(hosts, (provider as { base_url?: string }).base_url);
  }
  // A pool's deployment may have an endpoint of its own.
  for (const model of Object.values(config.file.models)) {
    for (const deployment of model.deployments ?? []) addHost(hosts, deployment.base_url);
  }
  // Longest first, so a key that holds another is scrubbed whole; each as it may be echoed.
  const list = [...secrets]
    .filter((secret) => secret.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  const wholeSecrets = list.length ? new RegExp(list.map(echoedSecretPattern).join("|"), "g") : undefined;
  const hostPattern = hosts.size
    ? new RegExp(
        `(?<![\\w.-])(?:${[...hosts]
          .sort((a, b) => b.length - a.length)
          .map(escapeRegExp)
          .join("|")})(?::\\d{1,5})?(?![\\w-])`,
        "gi",
      )
    : undefined;
  return (text, scope) => {
    let out = text;
    if (wholeSecrets) out = out.replace(wholeSecrets, REDACTED);
    const quotesPiece = pieceFinderOf(scope.keyPieces);
    if (quotesEncodedKey || quotesPiece) {
      // A sentence's full stop after the quoted key stays: one dot, or one after a `...` mask.
      out = out.replace(KEY_LIKE_RUN, (run) => {
        if (!quotesEncodedKey?.(run) && !quotesPiece?.(run)) return run;
        const dots = /\.*$/.exec(run)?.[0].length ?? 0;
        return dots === 1 || dots === 4 ? `${REDACTED}.` : REDACTED;
      });
    }
    if (hostPattern && scope.hosts) out = out.replace(hostPattern, ADDRESS);
    return out.replace(IP_ADDRESS, ADDRESS);
  };
}
