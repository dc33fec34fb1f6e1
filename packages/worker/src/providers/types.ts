import type { ChatRequest, ModelConfig, ToolCall } from "@cascade/shared";

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";

export interface CompletionUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens?: number;
  reasoningTokens?: number;
}

/** A provider's answer, normalised to what an OpenAI chat.completion carries. */
export interface Completion {
  content: string | null;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  usage: CompletionUsage;
  /** The provider's response id, where it sends one. */
  upstreamId?: string;
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
}

/** One configured provider. Throws ProviderError for every failure it can classify. */
export interface ProviderAdapter {
  readonly providerId: string;
  readonly type: string;
  generate(call: ProviderCall): Promise<Completion>;
}
