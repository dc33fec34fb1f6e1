import type { FastifyInstance } from "fastify";
import { declaresBody, HttpError } from "./http-error.js";

/**
 * The request's Content-Encoding when it names a coding other than identity, else undefined.
 * Codings are a comma-separated list, case-insensitive (RFC 9110 §8.4).
 */
export function unsupportedEncoding(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const codings = header
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter(Boolean);
  return codings.every((coding) => coding === "identity") ? undefined : header;
}

/**
 * Refuses, with a 415 naming the header, a body sent with a Content-Encoding (gzip, br, ...): the
 * API decodes none, and read as it came such a body was answered "not valid JSON" (or stored as
 * a file as it came). Before any parser reads the body, so on every route, multipart included.
 */
export function registerContentEncodingCheck(app: FastifyInstance): void {
  // Callback style (no promise per request); a throw here reaches Fastify's error handler.
  app.addHook("preParsing", (request, _reply, payload, done) => {
    const coding = unsupportedEncoding(request.headers["content-encoding"]);
    if (coding !== undefined && declaresBody(request)) {
      throw new HttpError(
        415,
        "unsupported_media_type_error",
        `content-encoding "${coding}" is not supported; send the body unencoded (identity)`,
        "content-encoding",
      );
    }
    done(null, payload);
  });
}

/**
 * The 415 for a JSON body declared in a charset other than UTF-8 (JSON is UTF-8, RFC 8259 §8.1),
 * where reading it as UTF-8 would change it: always for UTF-16 and UTF-32 (read as UTF-8, a UTF-16
 * body was taken for other text), and for any other charset once the body holds a byte past ASCII
 * (ASCII reads the same in all of them: a client that labels its ASCII JSON `ISO-8859-1` still
 * works). Undefined when nothing is against it.
 */
export function unsupportedJsonCharset(contentType: string | undefined, body: string): HttpError | undefined {
  if (contentType === undefined || contentType.length <= "application/json".length) return undefined;
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType)?.[1]?.toLowerCase();
  if (charset === undefined || charset === "utf-8" || charset === "utf8") return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ASCII is what every other charset reads alike.
  if (!/^(utf-?(16|32)|ucs-?[24])/.test(charset) && /^[\x00-\x7f]*$/.test(body)) return undefined;
  return new HttpError(
    415,
    "unsupported_media_type_error",
    `content-type charset "${charset}" is not supported; send JSON as UTF-8`,
    "content-type",
  );
}

/**
 * A JSON body whose bytes are not UTF-8 (a lone `\xff`, a truncated sequence, an encoded
 * surrogate): a 400, as a body that does not parse is, rather than read with U+FFFD in their
 * place and sent upstream so.
 */
export function notUtf8(): HttpError {
  return new HttpError(
    400,
    "invalid_request_error",
    "the body is not valid UTF-8; send JSON as UTF-8 (RFC 8259)",
  );
}
