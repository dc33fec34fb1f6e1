import { ChainResolutionError, type ResolvedChain, resolveChain } from "../chain/resolve-chain.js";
import { formatZodError } from "../config/load.js";
import type { ConfigFile } from "../config/schema.js";
import { type ChatRequest, openAIChatBodySchema } from "../schemas/chat-request.js";
import { fieldPath } from "../schemas/field-path.js";
import { endUserOf, type JobData } from "../schemas/job.js";
import type { BatchLineError } from "./batch-types.js";

/** A valid input line: `{"custom_id", "method": "POST", "url", "body"}`, its request and chain. */
export interface BatchLine {
  line: number;
  custom_id: string;
  request: ChatRequest;
  resolved: ResolvedChain;
}

const LINE_FIELDS = new Set(["custom_id", "method", "url", "body"]);
export const MAX_CUSTOM_ID_LENGTH = 512;

/** Characters (code points), as OpenAI counts a custom_id's length, not UTF-16 units. */
function characters(text: string): number {
  // Each character is one or two units: only the lengths between the limit and twice it need a count.
  if (text.length <= MAX_CUSTOM_ID_LENGTH || text.length > 2 * MAX_CUSTOM_ID_LENGTH) return text.length;
  let count = 0;
  for (const _ of text) count++;
  return count;
}

const problem = (line: number, code: string, param: string | null, message: string): BatchLineError => ({
  code,
  line,
  param,
  message: `line ${line}: ${message}`,
});

/** Reads `custom_id` without validating the rest (for lines that end without running). */
export function customIdOf(text: string): string {
  try {
    const value = JSON.parse(text) as { custom_id?: unknown };
    return typeof value.custom_id === "string" ? value.custom_id : "";
  } catch {
    return "";
  }
}

/**
 * Checks one input line the way OpenAI does, and resolves its chain (`body.model` may name a model
 * or a route): the line's request, or an error naming the line and the field.
 */
export function parseBatchLine(
  config: ConfigFile,
  endpoint: string,
  line: number,
  text: string,
  notUtf8 = false,
): { ok: true; value: BatchLine } | { ok: false; error: BatchLineError } {
  if (notUtf8) {
    return {
      ok: false,
      error: problem(line, "invalid_json_line", null, "not valid UTF-8; send JSONL as UTF-8"),
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      error: problem(line, "invalid_json_line", null, `not valid JSON (${(error as Error).message})`),
    };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, error: problem(line, "invalid_json_line", null, "must be a JSON object") };
  }
  const entry = value as Record<string, unknown>;
  const unknown = Object.keys(entry).filter((key) => !LINE_FIELDS.has(key));
  if (unknown.length) {
    return {
      ok: false,
      error: problem(
        line,
        "invalid_request",
        unknown[0] ?? null,
        `unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((key) => `"${key}"`).join(", ")}; a line holds custom_id, method, url and body`,
      ),
    };
  }
  for (const field of ["custom_id", "method", "url", "body"]) {
    if (entry[field] === undefined) {
      return { ok: false, error: problem(line, "missing_required_parameter", field, `${field} is required`) };
    }
  }
  const customId = entry.custom_id;
  if (typeof customId !== "string" || customId.length === 0 || characters(customId) > MAX_CUSTOM_ID_LENGTH) {
    return {
      ok: false,
      error: problem(
        line,
        "invalid_custom_id",
        "custom_id",
        `custom_id must be a string of 1 to ${MAX_CUSTOM_ID_LENGTH} characters`,
      ),
    };
  }
  if (entry.method !== "POST") {
    return { ok: false, error: problem(line, "invalid_method", "method", 'method must be "POST"') };
  }
  if (entry.url !== endpoint) {
    return {
      ok: false,
      error: problem(
        line,
        "invalid_url",
        "url",
        `url must be "${endpoint}", the batch's endpoint (got ${JSON.stringify(entry.url)})`,
      ),
    };
  }
  const body = entry.body;
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { ok: false, error: problem(line, "invalid_request", "body", "body must be a JSON object") };
  }
  if ((body as { stream?: unknown }).stream === true) {
    return {
      ok: false,
      error: problem(line, "invalid_request", "body.stream", "body.stream must not be true in a batch"),
    };
  }
  const parsed = openAIChatBodySchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    // An unknown field is named in the param (its issue's path is the object holding it).
    const unknown = first?.code === "unrecognized_keys" ? first.keys.slice(0, 1) : [];
    const param = fieldPath(["body", ...(first?.path ?? []), ...unknown]);
    return {
      ok: false,
      error: problem(line, "invalid_request", param, formatZodError(parsed.error, "body", fieldPath)),
    };
  }
  let resolved: ResolvedChain;
  try {
    resolved = resolveChain(config, { request: parsed.data });
  } catch (error) {
    if (!(error instanceof ChainResolutionError)) throw error;
    return {
      ok: false,
      error: problem(line, "model_not_found", "body.model", error.message.replace(/^request\./, "body.")),
    };
  }
  return { ok: true, value: { line, custom_id: customId, request: parsed.data, resolved } };
}

/** The job of one line: an ordinary Cascade job, as POST /v1/jobs would queue it. */
export function batchLineJobData(
  input: BatchLine,
  batch: { id: string; tenant: string; priority: number; expires_at: number },
  nowMs: number,
): JobData {
  const { request, resolved } = input;
  return {
    v: 1,
    tenant: batch.tenant,
    request,
    route: resolved.route,
    chain: resolved.chain,
    policy: resolved.policy,
    priority: batch.priority,
    // OpenAI's `user` is Cascade's end user: per-user budgets apply to batch lines too.
    ...endUserOf(undefined, request.user),
    created_at: Math.floor(nowMs / 1000),
    // A line may wait (queued, or for rate limits) until its batch's completion window closes.
    deadline_at: Math.max(batch.expires_at * 1000, nowMs + resolved.deadline_ms),
    batch: { id: batch.id, custom_id: input.custom_id, line: input.line },
  };
}
