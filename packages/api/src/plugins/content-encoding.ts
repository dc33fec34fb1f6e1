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
