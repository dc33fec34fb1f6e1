import {
  JSONParseError,
  type LanguageModelV3StreamPart,
  type LanguageModelV3Usage,
  type SharedV3Warning,
  TypeValidationError,
} from "@ai-sdk/provider";
import { generateId, StreamingToolCallTracker } from "@ai-sdk/provider-utils";
import { openAIErrorData } from "./failures.js";
import { parseJsonSecurely } from "./json-body.js";
import {
  arrayOf,
  isAnnotation,
  isLogprobs,
  isNullish,
  isNumber,
  isObject,
  isUsage,
  type Json,
  nullishArrayOf,
  nullishNumber,
  nullishString,
} from "./schema-checks.js";

/**
 * A streamed `chat.completion.chunk` read as @ai-sdk/openai 3.0.141's `doStream` reads it: each
 * event's data parsed (secure JSON parse) and checked by hand against exactly what its
 * `openaiChatChunkSchema` (zod: a chunk, or OpenAI's `{"error": {...}}`) accepts, then turned into
 * the same stream parts its TransformStream makes (text, tool-call deltas through the SDK's own
 * StreamingToolCallTracker, the finish with usage). The parity tests hold both paths to the same
 * parts. https://platform.openai.com/docs/api-reference/chat-streaming/streaming
 */

const isToolCallDelta = (value: unknown) =>
  isObject(value) &&
  isNumber(value.index) &&
  nullishString(value.id) &&
  (isNullish(value.type) || value.type === "function") &&
  isObject(value.function) &&
  nullishString(value.function.name) &&
  nullishString(value.function.arguments);

const isDelta = (value: unknown) =>
  isNullish(value) ||
  (isObject(value) &&
    (isNullish(value.role) || value.role === "assistant") &&
    nullishString(value.content) &&
    nullishString(value.refusal) &&
    nullishArrayOf(value.tool_calls, isToolCallDelta) &&
    nullishArrayOf(value.annotations, isAnnotation));

const isChoice = (value: unknown) =>
  isObject(value) &&
  isDelta(value.delta) &&
  isLogprobs(value.logprobs) &&
  nullishString(value.finish_reason) &&
  isNumber(value.index);

/** Whether the chunk half of the SDK's union accepts this value. */
function isChatChunk(value: unknown): value is ChatChunk {
  return (
    isObject(value) &&
    nullishString(value.id) &&
    nullishNumber(value.created) &&
    nullishString(value.model) &&
    arrayOf(value.choices, isChoice) &&
    isUsage(value.usage)
  );
}

interface ToolCallDelta {
  index: number;
  id?: string | null;
  type?: "function" | null;
  function: { name?: string | null; arguments?: string | null };
}
interface ChatChunk {
  id?: string | null;
  created?: number | null;
  model?: string | null;
  choices: Array<{
    delta?: {
      content?: string | null;
      refusal?: string | null;
      tool_calls?: ToolCallDelta[] | null;
      annotations?: unknown[] | null;
    } | null;
    logprobs?: { content?: unknown[] | null; refusal?: unknown[] | null } | null;
    finish_reason?: string | null;
  }>;
  usage?: Json | null;
}

/**
 * One event's data as the SDK's `safeParseJSON` gives it: a chunk, or OpenAI's error object (the
 * union's halves told apart by `kind`: zod strips the keys a half does not know, so a chunk that
 * also carries an `error` key is a chunk), or the error the SDK reports for data it cannot read.
 */
export type ParsedChunk =
  | { success: true; kind: "chunk"; value: ChatChunk; rawValue: unknown }
  | { success: true; kind: "error"; value: { error: Json }; rawValue: unknown }
  | { success: false; error: Error; rawValue: undefined };

/** Parses one event's data: a chunk, OpenAI's error object, or the error the SDK would report. */
export function parseChunk(text: string): ParsedChunk {
  const parsed = parseJsonSecurely(text);
  if (!parsed.ok) {
    return { success: false, error: new JSONParseError({ text, cause: parsed.error }), rawValue: undefined };
  }
  const value = parsed.value;
  if (isChatChunk(value)) return { success: true, kind: "chunk", value, rawValue: value };
  // zod keeps only the schema's keys: the error object as the SDK's error schema outputs it.
  const error = openAIErrorData(value);
  if (error) return { success: true, kind: "error", value: error, rawValue: value };
  const cause = new TypeError("the event is neither a chat.completion.chunk nor an error object");
  return { success: false, error: new TypeValidationError({ value, cause }), rawValue: undefined };
}

/** OpenAI's error frame of a parsed chunk, if it is one. */
export function errorFrameOf(chunk: ParsedChunk): Json | undefined {
  return chunk.success && chunk.kind === "error" ? chunk.value.error : undefined;
}

/** The SDK's `isOpenAIChatOutputChunk`: a chunk with content, refusal, tool calls or annotations. */
export function isOutputChunk(chunk: ParsedChunk): boolean {
  if (!chunk.success || chunk.kind !== "chunk") return false;
  const nonEmpty = (value: { length: number } | null | undefined) =>
    !isNullish(value) && (value?.length ?? 0) > 0;
  return chunk.value.choices.some((choice) => {
    const delta = choice.delta;
    return (
      nonEmpty(delta?.content) ||
      nonEmpty(delta?.refusal) ||
      nonEmpty(delta?.tool_calls) ||
      nonEmpty(delta?.annotations)
    );
  });
}

/** The SDK's `convertOpenAIChatUsage`. */
function usageOf(usage: Json | null | undefined): LanguageModelV3Usage {
  if (isNullish(usage)) {
    return {
      inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
      outputTokens: { total: undefined, text: undefined, reasoning: undefined },
      raw: undefined,
    };
  }
  const value = usage as Json;
  const prompt = value.prompt_tokens_details as Json | null | undefined;
  const completion = value.completion_tokens_details as Json | null | undefined;
  const promptTokens = (value.prompt_tokens as number | null | undefined) ?? 0;
  const completionTokens = (value.completion_tokens as number | null | undefined) ?? 0;
  const cachedTokens = (prompt?.cached_tokens as number | null | undefined) ?? 0;
  const cacheWriteTokens = (prompt?.cache_write_tokens as number | null | undefined) ?? undefined;
  const reasoningTokens = (completion?.reasoning_tokens as number | null | undefined) ?? 0;
  return {
    inputTokens: {
      total: promptTokens,
      noCache: promptTokens - cachedTokens - (cacheWriteTokens ?? 0),
      cacheRead: cachedTokens,
      cacheWrite: cacheWriteTokens,
    },
    outputTokens: {
      total: completionTokens,
      text: Math.max(0, completionTokens - reasoningTokens),
      reasoning: reasoningTokens,
    },
    raw: usage as never,
  };
}

/** The SDK's `mapOpenAIFinishReason`. */
function unifiedFinish(raw: string, hasRefusal: boolean) {
  switch (raw) {
    case "stop":
      return hasRefusal ? "content-filter" : "stop";
    case "length":
      return "length";
    case "content_filter":
      return "content-filter";
    case "function_call":
    case "tool_calls":
      return "tool-calls";
    default:
      return "other";
  }
}

/**
 * The SDK's `doStream` TransformStream, push-based: `start`, then `chunk` per event, then
 * `flush` at the end of the body. `emit` receives the parts in the SDK's order. Throws what the
 * SDK's transform throws (a tool call the tracker refuses: InvalidResponseDataError).
 */
export class ChunkMapper {
  private readonly tracker: StreamingToolCallTracker;
  private finishReason: { unified: string; raw: string | undefined } = { unified: "other", raw: undefined };
  private usage: Json | null | undefined;
  private metadataExtracted = false;
  private isActiveText = false;
  private hasRefusal = false;
  private rawFinishReason: string | undefined;
  private hasLogprobs = false;
  private readonly streamedLogprobs: unknown[] = [];
  private readonly providerMetadata: { openai: Json } = { openai: {} };

  /** A chunk's parts, held until the chunk is read whole (see `chunk`). */
  private held: LanguageModelV3StreamPart[] = [];

  constructor(
    private readonly output: (part: LanguageModelV3StreamPart) => void,
    private readonly includeRawChunks: boolean,
  ) {
    this.tracker = new StreamingToolCallTracker({ enqueue: this.emit } as never, {
      generateId,
      typeValidation: "if-present",
    });
  }

  private readonly emit = (part: LanguageModelV3StreamPart): void => {
    this.held.push(part);
  };

  /** Hands on the parts held, in order (the assembler may throw: an error part). */
  private release(): void {
    const parts = this.held;
    this.held = [];
    for (const part of parts) this.output(part);
  }

  /** Whether a chunk carried the provider's finish reason. */
  get finished(): boolean {
    return this.rawFinishReason !== undefined;
  }

  start(warnings: SharedV3Warning[]): void {
    this.output({ type: "stream-start", warnings });
  }

  /**
   * One event. Its parts go on once it is read whole: where the SDK's transform throws (the
   * tracker refusing a tool call), its stream errors and the parts it queued for that chunk are
   * dropped, only the raw chunk (read at once by the waiting reader) having gone on.
   */
  chunk(chunk: ParsedChunk): void {
    if (this.includeRawChunks) this.output({ type: "raw", rawValue: chunk.rawValue });
    try {
      this.read(chunk);
    } catch (error) {
      this.held = [];
      throw error;
    }
    this.release();
  }

  private read(chunk: ParsedChunk): void {
    const { emit } = this;
    if (!chunk.success) {
      this.finishReason = { unified: "error", raw: undefined };
      this.rawFinishReason = undefined;
      emit({ type: "error", error: chunk.error });
      return;
    }
    if (chunk.kind === "error") {
      this.finishReason = { unified: "error", raw: undefined };
      this.rawFinishReason = undefined;
      emit({ type: "error", error: chunk.value.error });
      return;
    }
    const value = chunk.value;
    if (!this.metadataExtracted) {
      const id = value.id ?? undefined;
      const modelId = value.model ?? undefined;
      const timestamp = value.created ? new Date(value.created * 1000) : undefined;
      if (id || modelId || timestamp) {
        this.metadataExtracted = true;
        emit({ type: "response-metadata", id, modelId, timestamp });
      }
    }
    if (!isNullish(value.usage)) {
      this.usage = value.usage;
      const details = (value.usage as Json).completion_tokens_details as Json | null | undefined;
      if (!isNullish(details?.accepted_prediction_tokens))
        this.providerMetadata.openai.acceptedPredictionTokens = details?.accepted_prediction_tokens;
      if (!isNullish(details?.rejected_prediction_tokens))
        this.providerMetadata.openai.rejectedPredictionTokens = details?.rejected_prediction_tokens;
    }
    const choice = value.choices[0];
    if (!isNullish(choice?.finish_reason)) this.rawFinishReason = choice?.finish_reason as string;
    if (!isNullish(choice?.logprobs)) {
      const logprobs = choice?.logprobs as { content?: unknown[] | null; refusal?: unknown[] | null };
      if (!isNullish(logprobs.content) || !isNullish(logprobs.refusal)) {
        this.hasLogprobs = true;
        this.streamedLogprobs.push(...(logprobs.content ?? []), ...(logprobs.refusal ?? []));
      }
    }
    const delta = choice?.delta;
    if (delta === undefined || delta === null) return;
    const textDeltas: string[] = [];
    const { content, refusal, tool_calls: toolCalls, annotations } = delta;
    if (typeof content === "string" && content.length > 0) textDeltas.push(content);
    if (typeof refusal === "string" && refusal.length > 0) {
      this.hasRefusal = true;
      textDeltas.push(refusal);
    }
    if (textDeltas.length === 0 && content === "") textDeltas.push(content);
    for (const textDelta of textDeltas) {
      if (!this.isActiveText) {
        emit({ type: "text-start", id: "0" });
        this.isActiveText = true;
      }
      emit({ type: "text-delta", id: "0", delta: textDelta });
    }
    if (toolCalls) for (const toolCallDelta of toolCalls) this.tracker.processDelta(toolCallDelta);
    if (annotations) {
      for (const annotation of annotations as Array<{ url_citation: { url: string; title: string } }>) {
        emit({
          type: "source",
          sourceType: "url",
          id: generateId(),
          url: annotation.url_citation.url,
          title: annotation.url_citation.title,
        });
      }
    }
  }

  flush(): void {
    if (this.isActiveText) this.emit({ type: "text-end", id: "0" });
    this.tracker.flush();
    if (this.rawFinishReason !== undefined) {
      this.finishReason = {
        unified: unifiedFinish(this.rawFinishReason, this.hasRefusal),
        raw: this.rawFinishReason,
      };
    }
    if (this.hasLogprobs) this.providerMetadata.openai.logprobs = this.streamedLogprobs as never;
    this.emit({
      type: "finish",
      finishReason: this.finishReason as never,
      usage: usageOf(this.usage),
      providerMetadata: this.providerMetadata as never,
    });
    this.release();
  }
}
