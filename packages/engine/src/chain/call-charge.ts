import { costUsd, type ModelConfig, usageCostUsd } from "@cascade/shared";
import type { Completion, CompletionUsage, ReportedUsage, SentSink } from "../providers/types.js";

/** The contract's estimate counts a token per 4 characters of text; streamed text counts the same. */
const CHARACTERS_PER_TOKEN = 4;

/** What one call is charged: the tokens settled against tpm and the USD against budgets and usage. */
export interface CallCharge {
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

/** A call that produced no usable completion: what its CallRecord saw, and how it ended. */
export interface UnfinishedCall
  extends Pick<CallRecord, "promptEstimate" | "streamedCharacters" | "wholeAnswerTokens">,
    Partial<Pick<CallRecord, "reported">> {
  /** Usage the provider reported although the call failed (a content-filtered completion). */
  usage: CompletionUsage | undefined;
  /** The provider had the request and may have worked on it: abandoned, or timed out. */
  abandoned: boolean;
  /** A stream the provider had begun to answer (a 2xx with events), though no text came. */
  answered?: boolean;
}

/**
 * What a call that produced no usable completion is charged (docs/decisions/0013-charging-calls-
 * that-end-badly.md): the provider's own usage when its answer carried one; else, for a call we
 * abandoned or that timed out, or a stream that failed after the provider began its answer (its
 * first event reports the prompt's tokens as billed), the prompt estimate plus the streamed text
 * estimated like a prompt (a non-streamed call abandoned or timed out: plus its whole answer's
 * output estimate, as admission reserved it), where a stream's own report of usage before it
 * failed replaces the prompt estimate and raises the output to its count (fifth revision);
 * else (an HTTP error, a refused connection) nothing, since providers do not bill those.
 */
export function chargeUnfinishedCall(model: Pick<ModelConfig, "price">, call: UnfinishedCall): CallCharge {
  if (call.usage) {
    const { promptTokens, completionTokens } = call.usage;
    return { promptTokens, completionTokens, costUsd: usageCostUsd(model, call.usage) };
  }
  if (!call.abandoned && !call.answered && call.streamedCharacters === 0)
    return { promptTokens: 0, completionTokens: 0, costUsd: 0 };
  const estimatedCompletion =
    call.abandoned && call.wholeAnswerTokens !== undefined
      ? call.wholeAnswerTokens
      : Math.ceil(call.streamedCharacters / CHARACTERS_PER_TOKEN);
  // What the provider reported in its stream before it failed replaces our estimate: its prompt
  // count (priced with its cache split, as a finished answer's usage), and its output count
  // where the text we saw does not already say more (the last report may predate later text).
  const reported = call.reported;
  const completionTokens = Math.max(estimatedCompletion, reported?.completionTokens ?? 0);
  // A report of 0 prompt tokens (some servers put a zeroed usage on every chunk) is no report: no
  // call with a prompt is free of prompt tokens.
  if (!reported?.promptTokens) {
    const promptTokens = call.promptEstimate;
    return { promptTokens, completionTokens, costUsd: costUsd(model, promptTokens, completionTokens) };
  }
  const usage: CompletionUsage = { promptTokens: reported.promptTokens, completionTokens };
  if (reported.cachedTokens !== undefined) usage.cachedTokens = reported.cachedTokens;
  if (reported.cacheWriteTokens !== undefined) usage.cacheWriteTokens = reported.cacheWriteTokens;
  return { promptTokens: usage.promptTokens, completionTokens, costUsd: usageCostUsd(model, usage) };
}

/**
 * The usage a completion is charged: what the provider reported; or, when it reported none (an
 * OpenAI-compatible server that sends no `usage`, a stream without its usage chunk: both read as
 * 0 prompt and 0 completion tokens, which no call with a prompt is), the prompt estimate plus the
 * answer estimated like a prompt (ceil(characters / 4)), as a call whose usage is unknown is
 * charged (ADR 0013). Free answers would pass every budget and price ceiling uncounted.
 */
export function completionChargeUsage(
  completion: Pick<Completion, "usage" | "content" | "refusal" | "toolCalls">,
  promptEstimate: number,
): CompletionUsage {
  const { usage } = completion;
  if (usage.promptTokens + usage.completionTokens > 0) return usage;
  const characters = streamedCharactersOf({
    ...(completion.content !== null ? { content: completion.content } : {}),
    ...(completion.refusal !== undefined ? { refusal: completion.refusal } : {}),
    toolCalls: completion.toolCalls.map((call) => call.function),
  });
  return { promptTokens: promptEstimate, completionTokens: Math.ceil(characters / CHARACTERS_PER_TOKEN) };
}

/**
 * What one call did, as its charge needs it; also the call's SentSink (ProviderCall's `sentTo`):
 * a call not streamed whose request was written makes the provider produce its whole answer.
 */
export class CallRecord implements SentSink {
  /** Characters of content and tool-call text already streamed to us. */
  streamedCharacters = 0;
  dispatched = false;
  answered = false;
  /**
   * A call not streamed whose request went out: the output tokens its whole answer may take (its
   * max_tokens, else the limit its adapter sent, Anthropic's 4096, else the contract's 1024).
   * Charged when it was abandoned or timed out: a provider finishes and bills a non-streamed answer
   * whether or not anyone is still listening. Unset for a request still waiting for a socket, which
   * reached no provider.
   */
  wholeAnswerTokens: number | undefined = undefined;
  /** A stream's usage as its provider reported it so far (StreamSink.usage), if it did. */
  reported: ReportedUsage | undefined = undefined;

  constructor(
    /** Prompt tokens estimated before the call (the same estimate admission reserved). */
    readonly promptEstimate: number,
    /** A call not streamed: its answer's output limit; undefined for a stream. */
    private readonly outputLimit: number | undefined,
  ) {}

  sent(): void {
    this.wholeAnswerTokens = this.outputLimit;
  }

  /**
   * A call not streamed whose provider began a 2xx answer: it had generated the whole completion
   * (a non-streamed answer is sent once finished), so an answer that then cannot be read (not
   * JSON, cut off) is billed all the same.
   */
  respondedWhole = false;

  responded(): void {
    this.respondedWhole = this.wholeAnswerTokens !== undefined;
  }
}

/** Characters of one streamed piece, as chargeUnfinishedCall counts them. */
export function streamedCharactersOf(part: {
  content?: string;
  refusal?: string;
  toolCalls?: Array<{ name?: string; arguments?: string }>;
}): number {
  let characters = (part.content?.length ?? 0) + (part.refusal?.length ?? 0);
  for (const call of part.toolCalls ?? [])
    characters += (call.name?.length ?? 0) + (call.arguments?.length ?? 0);
  return characters;
}
