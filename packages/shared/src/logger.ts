import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger };

/**
 * Paths that must never reach a log line: credentials, webhook secrets and prompts. Prompts are
 * customer data, and AI SDK errors carry the whole request body in `requestBodyValues`.
 */
export const REDACT_PATHS = [
  "authorization",
  "Authorization",
  "*.authorization",
  "*.Authorization",
  "headers.authorization",
  "req.headers.authorization",
  'req.headers["idempotency-key"]',
  "apiKey",
  "*.apiKey",
  "api_key",
  "*.api_key",
  "webhookSecret",
  "*.webhookSecret",
  "secret",
  "*.secret",
  "messages",
  "*.messages",
  "request.messages",
  "prompt",
  "*.prompt",
  "requestBodyValues",
  "*.requestBodyValues",
  "err.requestBodyValues",
];

export function createLogger(
  level: string,
  options: LoggerOptions = {},
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { pid: process.pid },
      ...options,
    },
    destination ?? pino.destination({ sync: false }),
  );
}
