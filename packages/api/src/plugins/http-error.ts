/** An error the API answers with directly, in the contract's `{"error": {...}}` shape. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly type: string,
    message: string,
    readonly param?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const badRequest = (message: string, param?: string) =>
  new HttpError(400, "invalid_request_error", message, param);
export const notFound = (message: string) => new HttpError(404, "not_found_error", message);
