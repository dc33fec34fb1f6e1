import type { ChatRequest, ModelConfig, ToolCall } from "@cascade/shared";

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";

export interface CompletionUsage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens read from the provider's cache (included in promptTokens). */
  cachedTokens?: number;
  /** Prompt tokens written to the provider's cache (Anthropic's cache creation; included in promptTokens). */
  cacheWriteTokens?: number;
  reasoningTokens?: number;
}

/**
 * OpenAI's `choices[].logprobs` object as the provider sent it (`{content, refusal}`, each a list
 * of `{token, logprob, bytes, top_logprobs}` or null): passed on unchanged, never rebuilt.
 * https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices
 */
export type ChoiceLogprobs = Readonly<Record<string, unknown>>;

/** A provider's answer, normalised to what an OpenAI chat.completion carries. */
export interface Completion {
  content: string | null;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  usage: CompletionUsage;
  /** The provider's response id, where it sends one. */
  upstreamId?: string;
  /**
   * The model declined (OpenAI's `message.refusal`, structured outputs): an answer, as at OpenAI,
   * not a content filter.
   */
  refusal?: string;
  /** The log probabilities the provider gave (asked for, by a provider that takes OpenAI's fields). */
  logprobs?: ChoiceLogprobs;
}

export interface ProviderCall {
  request: ChatRequest;
  /** The config's model id (what users name). */
  modelId: string;
  model: ModelConfig;
  /** The upstream model name sent to the provider. */
  upstreamName: string;
  /** Aborts on the hop's timeout, on cancellation and on lock loss. */
  signal: AbortSignal;
  /**
   * A call not streamed: told once undici writes its request on a socket (a call abandoned
   * before, waiting for a connection, reached no provider; ADR 0013). Undefined for streams.
   */
  sentTo: SentSink | undefined;
}

/** Told once a call's request is written on a socket, and once a 2xx answer to it begins. */
export interface SentSink {
  sent(): void;
  /**
   * The provider's 2xx answer began (its status line arrived): a non-streamed call whose answer
   * then cannot be read (a body that is not JSON, or cut off) was still billed its completion.
   */
  responded?(): void;
}

/** One streamed tool-call fragment, keyed like OpenAI's `delta.tool_calls[]` (by `index`). */
export interface ToolCallDelta {
  /** Position of the call in the completion's `toolCalls`, stable across its fragments. */
  index: number;
  /** Sent with the call's first fragment. */
  id?: string;
  /** Sent with the call's first fragment. */
  name?: string;
  /** A piece of the arguments JSON; the pieces of one call concatenate to its arguments. */
  arguments?: string;
}

/** One fragment as OpenAI's `delta.tool_calls[]` entry: `id`, `type` and the name come with the first. */
export interface OpenAIToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

/** Fragments in OpenAI's chunk shape (the gateway's chunks, a job's `delta` events). */
export function openAIToolCallDeltas(calls: readonly ToolCallDelta[]): OpenAIToolCallDelta[] {
  return calls.map((call) =>
    call.id !== undefined
      ? {
          index: call.index,
          id: call.id,
          type: "function",
          function: { name: call.name ?? "", arguments: call.arguments ?? "" },
        }
      : { index: call.index, function: { arguments: call.arguments ?? "" } },
  );
}

/** One piece of a streamed completion: text, a refusal's text (OpenAI's `delta.refusal`), tool calls. */
export interface StreamDelta {
  content?: string;
  refusal?: string;
  toolCalls?: ToolCallDelta[];
  /**
   * The provider's `logprobs` of the chunk this text came in, unchanged (only when it gave some).
   * A delta may carry them alone: entries no text came after, handed on once the stream finished.
   */
  logprobs?: ChoiceLogprobs;
}

/**
 * The usage a provider reported in its stream so far, before the stream's end (OpenAI's `usage`
 * chunk, Anthropic's message_start and message_delta usage, Gemini's usageMetadata): a stream
 * that then fails is charged it (ADR 0013, fifth revision). A count the provider has not reported
 * yet is absent. `promptTokens` includes the cache's tokens, as CompletionUsage's does.
 */
export interface ReportedUsage {
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  cacheWriteTokens?: number;
}

/** Receives a streamed completion's pieces in the order the provider sent them. */
export interface StreamSink {
  delta(part: StreamDelta): void;
  /** The usage the provider reported so far, whole (each call replaces the last), as it changes. */
  usage?(reported: ReportedUsage): void;
  /**
   * Every part read from the provider's stream, output or not (`output`: text, reasoning or tool
   * input), so silence can be timed (`first_token_timeout_ms`, `idle_timeout_ms`).
   */
  heartbeat?(output: boolean): void;
}

/** One configured provider. Throws ProviderError for every failure it can classify. */
export interface ProviderAdapter {
  readonly providerId: string;
  readonly type: string;
  generate(call: ProviderCall): Promise<Completion>;
  /**
   * The same call streamed upstream (`doStream`): content and tool-call argument deltas go to the
   * sink as they arrive; resolves with the assembled completion (as `generate` would return it),
   * or rejects with a ProviderError (an error mid-stream included) or the signal's reason. Deltas
   * already sent before a rejection are not taken back: the caller restarts the hop's output.
   */
  stream(call: ProviderCall, sink: StreamSink): Promise<Completion>;
  /**
   * The output limit this adapter sends when the request sets none (Anthropic requires one), so a
   * call abandoned after it went out is charged what the provider may have made (ADR 0013).
   */
  readonly defaultMaxTokens?: number;
}
