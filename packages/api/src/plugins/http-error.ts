import { hasIdShape } from "@cascade/shared";
import type { FastifyRequest } from "fastify";

/**
 * Every `error.type` the API answers with: the contract's names, chosen so that OpenAI's SDKs
 * raise their usual classes by status. A union, so that a misspelt type fails to compile.
 */
export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "method_not_allowed_error"
  | "conflict_error"
  | "request_too_large_error"
  | "unsupported_media_type_error"
  | "idempotency_error"
  | "rate_limit_error"
  | "insufficient_quota"
  | "service_unavailable_error"
  | "api_error";

/** An error the API answers with directly, in the contract's `{"error": {...}}` shape. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly type: ErrorType,
    message: string,
    readonly param?: string,
    readonly headers: Record<string, string> = {},
    /** OpenAI's machine-readable `error.code` (`model_not_found`), null when the type says it all. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const badRequest = (message: string, param?: string, code?: string) =>
  new HttpError(400, "invalid_request_error", message, param, {}, code);
/** A list's `after` cursor that names nothing to page from: a 400, not the first page again. */
export const unknownCursor = (kind: string, id: string | undefined) =>
  badRequest(`after: no ${kind} with id ${id}`, "after");

/**
 * Refuses an `after` cursor no id of the list's kind could be (a typo, another list's id). One of
 * the right shape is a position in the list's order, even once its item is deleted or expired.
 */
export function checkCursorShape(after: string | undefined, prefix: string, kind: string): void {
  if (after !== undefined && !hasIdShape(prefix, after)) throw unknownCursor(kind, after);
}
export const notFound = (message: string) => new HttpError(404, "not_found_error", message);

/** Whether the request declares a body, as Node frames one: chunked, or a length above zero. */
export function declaresBody(request: FastifyRequest): boolean {
  const length = request.headers["content-length"];
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * How many lines of the header `name` (lower case) the request carried. Node keeps only the first
 * of some repeated headers (Authorization among them) and joins others with ", " (Idempotency-Key):
 * either way a header a request may send once would be read one way silently.
 */
export function headerLines(request: FastifyRequest, name: string): number {
  const raw = request.raw.rawHeaders;
  let lines = 0;
  for (let index = 0; index < raw.length; index += 2) {
    const header = raw[index] as string;
    if (header.length === name.length && header.toLowerCase() === name) lines += 1;
  }
  return lines;
}
