import { findRefusedImageUrl } from "@cascade/engine";
import {
  type BatchLineError,
  type ConfigFile,
  EventLoopYielder,
  type FileLine,
  MAX_BATCH_LINES,
  MAX_LINE_BYTES,
  parseBatchLine,
} from "@cascade/shared";
import { jsonDepthExceeds, MAX_JSON_DEPTH } from "../plugins/json-depth.js";

export interface BatchValidation {
  /** Requests in the file (its lines, not counting trailing blank lines). */
  total: number;
  /** The first problems found (validation stops at `maxErrors`); empty when the file is valid. */
  errors: BatchLineError[];
}

/**
 * Checks a whole input file before the batch is accepted, as OpenAI does: every line a valid
 * request (JSON, custom_id, method, url, body per chatRequestSchema, body.model a known model or
 * route, nested at most MAX_JSON_DEPTH levels, image URLs on public hosts unless private networks
 * are allowed), custom_ids unique, at most MAX_BATCH_LINES
 * requests, no blank line before the last one.
 * Lines stream in from Redis and the loop yields every few milliseconds, so a 50,000-line file
 * never holds the event loop for long.
 */
export async function validateBatchInput(
  lines: AsyncIterable<FileLine>,
  config: ConfigFile,
  endpoint: string,
  options: { maxLines?: number; maxErrors?: number } = {},
): Promise<BatchValidation> {
  const maxLines = options.maxLines ?? MAX_BATCH_LINES;
  const maxErrors = options.maxErrors ?? 10;
  const errors: BatchLineError[] = [];
  const firstLineOf = new Map<string, number>();
  const yielder = new EventLoopYielder();
  let total = 0;
  let blankLine: number | undefined;
  const privateNetworks = { allowPrivateNetworks: config.webhooks.allow_private_networks };
  for await (const entry of lines) {
    if (!entry.tooLong && entry.text.trim() === "") {
      blankLine ??= entry.line;
      continue;
    }
    if (blankLine !== undefined) {
      errors.push({
        code: "invalid_json_line",
        line: blankLine,
        param: null,
        message: `line ${blankLine}: empty line; every line must hold one request`,
      });
      blankLine = undefined;
    }
    total += 1;
    if (total > maxLines) {
      errors.push({
        code: "too_many_requests",
        line: entry.line,
        param: null,
        message: `line ${entry.line}: the file holds more than ${maxLines} requests, the most one batch takes`,
      });
      break;
    }
    if (entry.tooLong) {
      errors.push({
        code: "line_too_long",
        line: entry.line,
        param: null,
        message: `line ${entry.line}: longer than ${MAX_LINE_BYTES} bytes`,
      });
    } else {
      const parsed = parseBatchLine(config, endpoint, entry.line, entry.text, entry.notUtf8 === true);
      if (!parsed.ok) errors.push(parsed.error);
      else if (jsonDepthExceeds(parsed.value.request, MAX_JSON_DEPTH)) {
        errors.push({
          code: "invalid_request",
          line: entry.line,
          param: "body",
          message: `line ${entry.line}: body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`,
        });
      } else {
        const image = findRefusedImageUrl(parsed.value.request.messages, privateNetworks, ["body"]);
        if (image) {
          errors.push({
            code: "invalid_request",
            line: entry.line,
            param: image.param,
            message: `line ${entry.line}: ${image.message}`,
          });
        }
        const first = firstLineOf.get(parsed.value.custom_id);
        if (first !== undefined) {
          errors.push({
            code: "duplicate_custom_id",
            line: entry.line,
            param: "custom_id",
            message: `line ${entry.line}: custom_id ${JSON.stringify(parsed.value.custom_id)} is already used on line ${first}; custom_ids must be unique`,
          });
        } else firstLineOf.set(parsed.value.custom_id, entry.line);
      }
    }
    if (errors.length >= maxErrors) break;
    await yielder.maybeYield();
  }
  if (total === 0 && errors.length === 0) {
    errors.push({ code: "empty_file", line: null, param: null, message: "the input file holds no requests" });
  }
  return { total, errors };
}
