import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3GenerateResult,
  LanguageModelV3Prompt,
} from "@ai-sdk/provider";
import { reportingSent } from "../http.js";
import { ProviderError } from "../provider-error.js";
import type { Completion, ProviderAdapter, ProviderCall, StreamSink } from "../types.js";
import { fromGenerateResult } from "./from-result.js";
import { type StreamClassifiers, type StreamedResult, streamResult } from "./from-stream.js";
import { generateOrClassify, modelCache } from "./models.js";
import { toCallOptions } from "./to-call-options.js";

/**
 * What one AI SDK provider contributes to an adapter; everything else (the OpenAI request as call
 * options, one `doGenerate` or `doStream` per call, the answer as a Completion) is the same for all.
 */
export interface AiSdkAdapterParts {
  readonly providerId: string;
  readonly type: string;
  /** The SDK's model object for an upstream model name (made once per name). */
  model(upstreamName: string): LanguageModelV3;
  /** The provider's error knowledge: its classifier and its mid-stream error events. */
  readonly errors: StreamClassifiers;
  /** Adjusts the call options for this provider in place (defaults it needs, provider options). */
  adjustOptions?(options: LanguageModelV3CallOptions, call: ProviderCall): void;
  /** Reshapes the prompt before the call, asynchronously (Gemini downloads images here). */
  preparePrompt?(prompt: LanguageModelV3Prompt, signal: AbortSignal): Promise<LanguageModelV3Prompt>;
  /** Throws a ProviderError when a generated answer is the provider's way of not answering. */
  rejectGenerated?(result: LanguageModelV3GenerateResult): void;
  /** The same for a streamed answer, which has no response body (defaults to rejectGenerated). */
  rejectStreamed?(result: StreamedResult): void;
  /** The output limit `adjustOptions` sends when the request sets none (ProviderAdapter's). */
  readonly defaultMaxTokens?: number;
  /**
   * Makes a non-streamed call itself instead of `doGenerate` (the lean OpenAI client), given the
   * SDK's way as `sdkGenerate` for models it cannot call. Must classify like `errors.classify`.
   */
  generateWith?(sdkGenerate: GenerateCall): GenerateCall;
  /** The same for streamed calls: reads the stream itself, given `doStream`'s way as `sdkStream`. */
  streamWith?(sdkStream: StreamCall): StreamCall;
}

/** One non-streamed call of a model with prepared call options. */
export type GenerateCall = (
  model: LanguageModelV3,
  options: LanguageModelV3CallOptions,
  call: ProviderCall,
) => Promise<Completion>;

/** One streamed call of a model with prepared call options, read to its end. */
export type StreamCall = (
  model: LanguageModelV3,
  options: LanguageModelV3CallOptions,
  sink: StreamSink,
) => Promise<StreamedResult>;

/**
 * Runs a provider's refusal check on an answer it sent: a refusal (a filtered candidate, a blocked
 * prompt, Anthropic's `refusal` stop) was answered and billed, so the error carries the answer's
 * reported usage, which the call is charged (ADR 0013), as an OpenAI content filter's does.
 */
function rejectBilled(
  reject: (result: LanguageModelV3GenerateResult) => void,
  result: LanguageModelV3GenerateResult,
): void {
  try {
    reject(result);
  } catch (error) {
    if (!(error instanceof ProviderError) || error.usage !== undefined) throw error;
    const promptTokens = result.usage.inputTokens.total ?? 0;
    const completionTokens = result.usage.outputTokens.total ?? 0;
    if (promptTokens + completionTokens === 0) throw error;
    throw new ProviderError(error.reason, error.message, {
      ...(error.httpStatus !== undefined ? { httpStatus: error.httpStatus } : {}),
      ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
      providerSpecific: error.providerSpecific,
      usage: { promptTokens, completionTokens },
      cause: error.cause,
    });
  }
}

/**
 * One adapter over an AI SDK `LanguageModelV3`, `generate` and `stream` alike. A provider with no
 * prompt to prepare stays synchronous up to the call, so the success path adds no await.
 */
export function createAiSdkAdapter(parts: AiSdkAdapterParts): ProviderAdapter {
  const modelFor = modelCache((name) => parts.model(name));
  const { errors, adjustOptions, preparePrompt, rejectGenerated } = parts;
  const rejectStreamed = parts.rejectStreamed ?? rejectGenerated;

  const callOptions = (call: ProviderCall): LanguageModelV3CallOptions => {
    const options = toCallOptions(call.request, call.signal);
    adjustOptions?.(options, call);
    return options;
  };
  const preparedOptions = async (call: ProviderCall): Promise<LanguageModelV3CallOptions> => {
    const options = callOptions(call);
    if (preparePrompt) options.prompt = await preparePrompt(options.prompt, call.signal);
    return options;
  };

  const sdkGenerate: GenerateCall = async (model, options, call) => {
    // The request names the call's sent callback for the provider dispatcher (http.ts).
    const sending = call.sentTo ? reportingSent(call.sentTo) : undefined;
    if (sending) options.headers = { ...options.headers, ...sending.headers };
    try {
      const result = await generateOrClassify(model, options, call.signal, errors.classify);
      if (rejectGenerated) rejectBilled(rejectGenerated, result);
      return fromGenerateResult(result);
    } finally {
      sending?.release();
    }
  };
  const generateCall = parts.generateWith ? parts.generateWith(sdkGenerate) : sdkGenerate;
  const sdkStream: StreamCall = (model, options, sink) => streamResult(model, options, sink, errors);
  const streamCall = parts.streamWith ? parts.streamWith(sdkStream) : sdkStream;

  return {
    providerId: parts.providerId,
    type: parts.type,
    ...(parts.defaultMaxTokens !== undefined ? { defaultMaxTokens: parts.defaultMaxTokens } : {}),
    async generate(call) {
      const options = preparePrompt ? await preparedOptions(call) : callOptions(call);
      return generateCall(modelFor(call.upstreamName), options, call);
    },
    async stream(call, sink) {
      const options = preparePrompt ? await preparedOptions(call) : callOptions(call);
      // The provider's own events reach the StreamAssembler too: the usage they report before the
      // stream ends is what a stream that then fails is charged (ADR 0013, fifth revision).
      options.includeRawChunks = true;
      const model = modelFor(call.upstreamName);
      const result = await streamCall(model, options, sink);
      if (rejectStreamed) rejectBilled(rejectStreamed, result);
      return fromGenerateResult(result);
    },
  };
}
