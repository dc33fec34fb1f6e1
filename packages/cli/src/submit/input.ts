import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

/** One request line of the input file, as validated by the first pass. */
export interface InputEntry {
  /** 1-based line number in the file. */
  line: number;
  /** The line's `custom_id`, else its line number. */
  customId: string;
}

export interface InterpretedLine {
  customId: string;
  request: Record<string, unknown>;
}

export interface JobOptions {
  route?: string | undefined;
  model?: string | undefined;
  webhook?: string | undefined;
}

const CHAT_URLS = new Set(["/v1/chat/completions", "/chat/completions"]);
const MAX_METADATA_VALUE = 512;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Reads one line: a Batch line (`{"custom_id", "method"?, "url"?, "body": {...}}`) or a plain
 * chat-completions body (`{"messages": [...], ...}`, its id the line number; a top-level
 * `custom_id` is taken as its id too). Returns an error message for anything else.
 */
export function interpretLine(text: string, line: number): InterpretedLine | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `not valid JSON (${(error as Error).message})` };
  }
  if (!isObject(value)) return { error: "not a JSON object" };
  let customId: unknown = value.custom_id;
  let request: unknown;
  if ("body" in value) {
    if (value.method !== undefined && String(value.method).toUpperCase() !== "POST") {
      return { error: `method ${JSON.stringify(value.method)}: only POST lines are supported` };
    }
    if (value.url !== undefined && !CHAT_URLS.has(String(value.url))) {
      return { error: `url ${JSON.stringify(value.url)}: only /v1/chat/completions lines are supported` };
    }
    if (customId === undefined) return { error: "a Batch line (with body) needs a custom_id" };
    request = value.body;
    if (!isObject(request)) return { error: "body must be a JSON object (a chat-completions request)" };
  } else if ("messages" in value) {
    const { custom_id: _ignored, ...rest } = value;
    request = rest;
  } else {
    return {
      error: 'neither a chat-completions body ({"messages": [...]}) nor a Batch line ({"custom_id", "body"})',
    };
  }
  if (!Array.isArray((request as Record<string, unknown>).messages)) {
    return { error: "the request has no messages array" };
  }
  if (customId === undefined) customId = String(line);
  if ((typeof customId !== "string" && typeof customId !== "number") || String(customId) === "") {
    return { error: "custom_id must be a non-empty string" };
  }
  return { customId: String(customId), request: request as Record<string, unknown> };
}

/** The POST /v1/jobs body for a line. */
export function jobBody(
  interpreted: InterpretedLine,
  line: number,
  options: JobOptions,
): Record<string, unknown> {
  const request = options.model ? { ...interpreted.request, model: options.model } : interpreted.request;
  const metadata: Record<string, string> = { input_line: String(line) };
  if (interpreted.customId.length <= MAX_METADATA_VALUE) metadata.custom_id = interpreted.customId;
  return {
    request,
    ...(options.route ? { route: options.route } : {}),
    ...(options.webhook ? { webhook: { url: options.webhook } } : {}),
    metadata,
  };
}

/**
 * The line's Idempotency-Key: a hash of the input file's identity (its real path), the line number
 * and the exact job body, so the same line of the same file never makes a second job (for the
 * API's 24 h), while an edited line or other options make a new one rather than a 422.
 */
export function idempotencyKey(inputIdentity: string, line: number, body: unknown): string {
  const hash = createHash("sha256")
    .update(`${inputIdentity}\n${line}\n${JSON.stringify(body)}`)
    .digest("hex");
  return `cascade-cli-${hash}`;
}

/** The file's non-blank lines with their 1-based numbers, streamed. */
export async function* readLines(path: string): AsyncGenerator<{ line: number; text: string }> {
  const stream = createReadStream(path, { encoding: "utf8" });
  const reader = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const text of reader) {
      line += 1;
      if (text.trim() === "") continue;
      yield { line, text };
    }
  } finally {
    reader.close();
    stream.destroy();
  }
}

export interface InputScan {
  /** sha256 of the file's lines (its content identity: a changed file cannot resume a run). */
  sha256: string;
  entries: InputEntry[];
  errors: Array<{ line: number; message: string }>;
}

/** The first pass: validates every line and collects ids, before anything is submitted. */
export async function scanInput(path: string): Promise<InputScan> {
  const hash = createHash("sha256");
  const entries: InputEntry[] = [];
  const errors: InputScan["errors"] = [];
  const seen = new Map<string, number>();
  for await (const { line, text } of readLines(path)) {
    hash.update(`${line}\n${text}\n`);
    const interpreted = interpretLine(text, line);
    if ("error" in interpreted) {
      errors.push({ line, message: interpreted.error });
      continue;
    }
    const previous = seen.get(interpreted.customId);
    if (previous !== undefined) {
      errors.push({
        line,
        message: `custom_id ${JSON.stringify(interpreted.customId)} is also on line ${previous}; ids must be unique`,
      });
      continue;
    }
    seen.set(interpreted.customId, line);
    entries.push({ line, customId: interpreted.customId });
  }
  return { sha256: hash.digest("hex"), entries, errors };
}
