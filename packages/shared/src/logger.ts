import { type Logger, type LoggerOptions, pino } from "pino";
import { build as prettyStream } from "pino-pretty";

export type { Logger };

/**
 * Paths that must never reach a log line: credentials, webhook secrets and prompts. Prompts are
 * customer data, and AI SDK errors carry the whole request body in `requestBodyValues`.
 * Only exact paths: pino's wildcard redaction copies and walks every line once per wildcard,
 * which measured ~3× the cost of the line itself. Cascade logs its own small objects (never a
 * raw request), so the places a secret could appear are known and listed here.
 */
export const REDACT_PATHS = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  'req.headers["idempotency-key"]',
  "apiKey",
  "api_key",
  "webhookSecret",
  "secret",
  "messages",
  "request.messages",
  "data.request.messages",
  "prompt",
  "requestBodyValues",
  "err.requestBodyValues",
  "err.cause.requestBodyValues",
  "err.responseBody",
];

/**
 * The log destination: asynchronous and buffered up to 4 KiB, so a busy worker makes one write
 * per few dozen lines instead of a syscall per line (measured ~15 µs per job otherwise). A timer
 * flushes the buffer every 200 ms so a quiet process still shows its lines promptly.
 */
export function createLogDestination(target: string | number = 1): ReturnType<typeof pino.destination> {
  const destination = pino.destination({ dest: target, sync: false, minLength: 4096 });
  const timer = setInterval(() => {
    try {
      destination.flush();
    } catch {
      // Not ready yet (still opening) or already closed: the next tick or exit flushes.
    }
  }, 200);
  timer.unref();
  process.once("exit", () => {
    try {
      destination.flushSync();
    } catch {}
  });
  return destination;
}

/** How log lines are written: one JSON object per line, or pino-pretty's lines for a person. */
export type LogFormat = "json" | "pretty";

/**
 * Pretty lines only when a person is watching: stdout is a terminal (`npm start`, a process run
 * by hand). Anything that captures stdout (log shippers, CI, tests, `| cat`, `> file`) gets JSON,
 * one object per line. No setting overrides it: `… | npx pino-pretty` prettifies captured JSON.
 */
export function logFormatFor(isTTY: boolean | undefined): LogFormat {
  return isTTY === true ? "pretty" : "json";
}

/**
 * pino-pretty as a stream in this thread (no worker-thread transport): a terminal shows few
 * enough lines that formatting them here costs nothing that matters. One line per entry, fields
 * inline; colours unless NO_COLOR is set; redaction has happened before the line gets here.
 */
export function createPrettyDestination(
  destination: number | NodeJS.WritableStream = 1,
): pino.DestinationStream {
  return prettyStream({
    destination,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname",
    singleLine: true,
  });
}

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
    destination ??
      (logFormatFor(process.stdout.isTTY) === "pretty" ? createPrettyDestination() : createLogDestination()),
  );
}
