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

/** Lines gathered before they are handed to the file descriptor's writer as one string. */
const LOG_BATCH_CHARS = 4096;
/** A quiet process's lines are written at least this often. */
const LOG_FLUSH_MS = 200;

type SonicBoom = ReturnType<typeof pino.destination>;

/**
 * pino's destination for JSON lines: lines are kept in an array (their lengths summed) and handed
 * to sonic-boom as one string once LOG_BATCH_CHARS have gathered, or at the next flush. sonic-boom
 * (minLength 0) then writes each batch asynchronously, one write at a time. Its own buffering
 * (minLength) measures the whole pending buffer with Buffer.byteLength on every line, which
 * flattens it: ~8 KiB allocated and copied per line at a worker's rates (ADR 0023).
 */
export class LogDestination implements pino.DestinationStream {
  private lines: string[] = [];
  private chars = 0;

  constructor(private readonly writer: SonicBoom) {}

  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= LOG_BATCH_CHARS) this.pass();
  }

  private pass(): void {
    const { lines } = this;
    if (lines.length === 0) return;
    this.lines = [];
    this.chars = 0;
    this.writer.write(lines.length === 1 ? (lines[0] as string) : lines.join(""));
  }

  /** Hands what is gathered to the writer (which writes it as soon as its current write ends). */
  flush(callback?: (error?: Error) => void): void {
    this.pass();
    this.writer.flush(callback);
  }

  /** Writes everything now, synchronously (on exit). */
  flushSync(): void {
    this.pass();
    this.writer.flushSync();
  }

  end(): void {
    this.pass();
    this.writer.end();
  }
}

/**
 * The log destination: asynchronous and batched, so a busy worker makes one write per few dozen
 * lines instead of a syscall per line (measured ~15 µs per job otherwise). A timer hands the
 * gathered lines over every 200 ms so a quiet process still shows its lines promptly, and what is
 * left is written synchronously when the process exits.
 */
export function createLogDestination(target: string | number = 1): LogDestination {
  const destination = new LogDestination(pino.destination({ dest: target, sync: false, minLength: 0 }));
  const timer = setInterval(() => {
    try {
      destination.flush();
    } catch {
      // Not ready yet (still opening) or already closed: the next tick or exit flushes.
    }
  }, LOG_FLUSH_MS);
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
