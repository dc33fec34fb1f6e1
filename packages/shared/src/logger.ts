import { writeSync } from "node:fs";
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
  // ioredis errors carry the refused command: its arguments hold job data (prompts) and answers.
  "err.command.args",
  "err.cause.command.args",
];

/** Lines gathered before they are handed to the file descriptor's writer as one string. */
const LOG_BATCH_CHARS = 4096;
/** A quiet process's lines are written at least this often. */
const LOG_FLUSH_MS = 200;
/** At exit, a full pipe (EAGAIN) is waited on this long per try, this many times, before lines are given up. */
const EXIT_RETRY_MS = 10;
const EXIT_RETRIES = 500;

/** sonic-boom, with the descriptor it has open (set once opened; its types leave it out). */
type SonicBoom = ReturnType<typeof pino.destination> & { readonly fd?: number; readonly destroyed?: boolean };

/** Writes all of `text` to `fd` now, waiting out a full non-blocking pipe (EAGAIN) for a while. */
function writeAllSync(fd: number, text: string): void {
  let rest = Buffer.from(text);
  let tries = 0;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== "EAGAIN" && code !== "EBUSY") || ++tries > EXIT_RETRIES) throw error;
      Atomics.wait(pause, 0, 0, EXIT_RETRY_MS);
    }
  }
}

/**
 * pino's destination for JSON lines (ADR 0023): lines are kept in an array (their lengths summed)
 * and handed to sonic-boom as one string once LOG_BATCH_CHARS have gathered, or at a flush (every
 * LOG_FLUSH_MS, and `logger.flush()`); sonic-boom (minLength 0) writes each hand-over at once,
 * asynchronously, one write at a time, and what was handed over meanwhile right after.
 * sonic-boom's own buffering measures its whole pending buffer with Buffer.byteLength on every
 * string it is given, which flattens it: given lines one by one, that was ~8 KiB copied per line.
 * On exit what is left is written synchronously.
 */
export class LogDestination implements pino.DestinationStream {
  private lines: string[] = [];
  private chars = 0;
  private ended = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onExit = () => {
    try {
      this.flushSync();
    } catch {
      // Not open yet, or closed: nothing more can be written.
    }
  };

  constructor(private readonly writer: SonicBoom) {
    this.timer = setInterval(() => {
      try {
        this.flush();
      } catch {
        // Closed: the lines have nowhere to go.
      }
    }, LOG_FLUSH_MS);
    this.timer.unref();
    process.once("exit", this.onExit);
  }

  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= LOG_BATCH_CHARS) this.handOver();
  }

  /** Hands the gathered lines to the writer, which writes them as soon as its current write ends. */
  private handOver(): void {
    const gathered = this.take();
    if (gathered) this.writer.write(gathered);
  }

  /** The gathered lines as one string, forgotten here ("" when none). */
  private take(): string {
    const { lines } = this;
    if (lines.length === 0) return "";
    this.lines = [];
    this.chars = 0;
    return lines.length === 1 ? (lines[0] as string) : lines.join("");
  }

  /**
   * Writes what is gathered. `callback`: once everything handed over so far is written (sonic-boom,
   * at minLength 0, says "drain" only then; an empty write makes one when nothing is in flight),
   * with an error when the destination is closed or failed.
   */
  flush(callback?: (error?: Error) => void): void {
    if (!callback) {
      this.handOver();
      return;
    }
    if (this.ended || this.writer.destroyed) {
      process.nextTick(callback, new Error("the log destination is closed"));
      return;
    }
    const { writer } = this;
    if (writer.fd === undefined || writer.fd < 0) {
      // Still opening: what is handed over waits for the file; flush again once it is open.
      this.handOver();
      const onReady = () => {
        writer.off("error", onOpenError);
        this.flush(callback);
      };
      const onOpenError = (error: Error) => {
        writer.off("ready", onReady);
        callback(error);
      };
      writer.once("ready", onReady);
      writer.once("error", onOpenError);
      return;
    }
    const onError = (error: Error) => {
      writer.off("drain", onDrain);
      callback(error);
    };
    const onDrain = () => {
      writer.off("error", onError);
      callback();
    };
    writer.once("drain", onDrain);
    writer.once("error", onError);
    try {
      writer.write(this.take());
    } catch (error) {
      writer.off("drain", onDrain);
      writer.off("error", onError);
      callback(error as Error);
    }
  }

  /**
   * Writes everything now, synchronously (on exit): sonic-boom's pending lines, then the gathered
   * ones (a full pipe is waited out for up to EXIT_RETRIES × EXIT_RETRY_MS; sonic-boom's own part
   * follows its rules). A write already in flight on the thread pool is not waited for.
   */
  flushSync(): void {
    // sonic-boom's first: if it cannot write (not open yet, closed) it throws, and the gathered
    // lines are kept for a later try.
    this.writer.flushSync();
    const gathered = this.take();
    const { fd } = this.writer;
    if (gathered && fd !== undefined && fd >= 0) writeAllSync(fd, gathered);
  }

  end(): void {
    this.ended = true;
    clearInterval(this.timer);
    process.removeListener("exit", this.onExit);
    this.handOver();
    this.writer.end();
  }
}

/**
 * The log destination: asynchronous and batched, so a busy worker makes one write per few dozen
 * lines instead of a syscall per line (measured ~15 µs per job otherwise); a quiet process's lines
 * are written within 200 ms, and what is left when the process exits is written synchronously.
 */
export function createLogDestination(target: string | number = 1): LogDestination {
  return new LogDestination(pino.destination({ dest: target, sync: false, minLength: 0 }));
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
