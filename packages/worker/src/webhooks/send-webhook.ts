import { findUrlRejection, parseOutboundUrl, UrlRejectedError } from "@cascade/engine";
import { type Dispatcher, request } from "undici";

export interface SendWebhookOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  timeoutMs: number;
  allowPrivateNetworks: boolean;
}

/** One HTTP delivery attempt, as the record and the retry logic see it. */
export interface SendResult {
  delivered: boolean;
  httpStatus: number | undefined;
  error: string | undefined;
  /** Retrying cannot help (410 Gone, a refused URL): the delivery is dead at once. */
  permanent: boolean;
}

const ERROR_BODY_BYTES = 300;

async function readStart(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= ERROR_BODY_BYTES) break;
  }
  return Buffer.concat(chunks).toString("utf8").slice(0, ERROR_BODY_BYTES).replace(/\s+/g, " ").trim();
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
  const code = (error as NodeJS.ErrnoException).code ?? cause?.code;
  const message = cause?.message ?? (error as Error).message ?? String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/**
 * POSTs one webhook. 2xx is success; a redirect is not followed (a failure naming its target);
 * 410 stops retries; any other status, a network error or the timeout (connect to the end of the
 * response) is retryable. A URL refused by the address guard is permanent (no retry fixes a private
 * address); a host that does not resolve at connect time is retried like a network error.
 */
export async function sendWebhook(options: SendWebhookOptions): Promise<SendResult> {
  try {
    parseOutboundUrl(options.url, { allowPrivateNetworks: options.allowPrivateNetworks });
  } catch (error) {
    if (error instanceof UrlRejectedError) {
      return { delivered: false, httpStatus: undefined, error: `refused: ${error.message}`, permanent: true };
    }
    throw error;
  }
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await request(options.url, {
      method: "POST",
      headers: options.headers,
      body: options.body,
      dispatcher: options.dispatcher,
      signal,
    });
    const status = response.statusCode;
    if (status >= 200 && status < 300) {
      // The answer is in: a receiver that is slow to finish its body has still accepted it.
      void response.body.dump({ limit: 64 * 1024 }).catch(() => {});
      return { delivered: true, httpStatus: status, error: undefined, permanent: false };
    }
    const text = await readStart(response.body);
    response.body.destroy();
    let error = `HTTP ${status}${text ? `: ${text}` : ""}`;
    if (status >= 300 && status < 400) {
      const location = response.headers.location;
      error = `HTTP ${status} redirect${location ? ` to ${String(location)}` : ""} not followed; point the webhook at the final URL`;
    } else if (status === 410) {
      error = `HTTP 410 Gone: the receiver asked to stop; no more retries of this delivery`;
    }
    return { delivered: false, httpStatus: status, error, permanent: status === 410 };
  } catch (error) {
    const rejection = findUrlRejection(error);
    if (rejection) {
      // A forbidden address is final; a name that does not resolve right now (EAI_AGAIN, a slow
      // resolver) may well resolve at the next attempt.
      return {
        delivered: false,
        httpStatus: undefined,
        error: `refused: ${rejection.message}`,
        permanent: rejection.reason !== "unresolvable",
      };
    }
    if (signal.aborted) {
      return {
        delivered: false,
        httpStatus: undefined,
        error: `timed out after ${options.timeoutMs} ms`,
        permanent: false,
      };
    }
    return { delivered: false, httpStatus: undefined, error: describeNetworkError(error), permanent: false };
  }
}
