import type { ServerResponse } from "node:http";
import {
  type JobEventSink,
  openAIToolCallDeltas,
  type StreamContinuation,
  type StreamDelta,
} from "@cascade/engine";
import type { Attempt, JobObject } from "@cascade/shared";

/**
 * What a streaming caller may leave unread in the API's socket buffer (about a million tokens of
 * chunks) before it counts as gone.
 */
export const MAX_UNREAD_BYTES = 8 * 1024 * 1024;

export interface ChunkStreamOptions {
  /** The completion's id, the same in every chunk. */
  id: string;
  created: number;
  /** The config model id of each hop of the chain (chunks name the model that produced them). */
  chainModels: readonly string[];
  holdMs: number;
  policy: StreamContinuation["policy"];
  /** `stream_options.include_usage`: every chunk before the usage chunk says `usage: null`, as OpenAI's do. */
  includeUsage?: boolean;
  /**
   * The request asked for `logprobs`: each chunk carries the provider's log probabilities of its
   * text, as the provider sent them, or null from a hop that gave none (ADR 0017).
   */
  logprobs?: boolean;
  /** Writes the status line and headers, once, when the first tokens are released. */
  open(modelId: string, provider: string | undefined): void;
}

type DeltaPart = StreamDelta;

/** The first chunk's delta of an answer that starts with text, as OpenAI's. */
const ROLE_DELTA = { role: "assistant", content: "", refusal: null };

/**
 * One streamed answer in OpenAI's `chat.completion.chunk` SSE format. It is the engine's event
 * sink for the gateway: deltas become chunks; a failed hop's `restart` drops what is still held
 * back (`stream_hold_ms`), and `shown()` tells the engine what the caller has already seen, so a
 * failure after that continues the answer (prefill) or ends it (contract, "Streams never lie").
 * The HTTP response is opened at the first released token, so a request that fails before any
 * token still gets an ordinary error status.
 */
export class ChunkStream implements JobEventSink, StreamContinuation {
  readonly policy: StreamContinuation["policy"];
  opened = false;
  readonly attempts: Attempt[] = [];
  private held: Array<{ hop: number; part: DeltaPart }> = [];
  private holdTimer: NodeJS.Timeout | undefined;
  private shownContent = "";
  private shownTools = false;
  /** A refusal's text was shown: no model continues a refusal (nor tool calls). */
  private shownRefusal = false;
  private roleSent = false;
  /**
   * Log probabilities that came alone (from a hop that streamed no text) while nothing was shown:
   * they wait for the answer's finish rather than open the response, which a later failure of the
   * same hop would then have to end with an error event instead of an ordinary error status.
   */
  private unopened: { hop: number; part: DeltaPart } | undefined;
  /** SSE events not yet handed to the response: sent as one write when the loop's turn ends. */
  private pending = "";
  private flushing = false;
  /** The longest event queued so far: a caller reading at once may hold one of them unread. */
  private longestEvent = 0;

  constructor(
    private readonly response: ServerResponse,
    private readonly options: ChunkStreamOptions,
  ) {
    this.policy = options.policy;
  }

  status(): void {}

  attempt(attempt: Attempt): void {
    this.attempts.push(attempt);
  }

  /** The provider of the call in flight: a pooled model's answering deployment's, for the headers. */
  private provider: string | undefined;

  calling(_hop: number, provider: string): void {
    this.provider = provider;
  }

  delta(hop: number, part: DeltaPart): void {
    if (this.options.holdMs <= 0 || (this.opened && this.holdTimer === undefined)) {
      this.release(hop, part);
      return;
    }
    this.held.push({ hop, part });
    this.holdTimer ??= setTimeout(() => this.flushHeld(), this.options.holdMs);
  }

  restart(): void {
    // Nothing held back was seen: drop it, and hold the next hop's first tokens afresh.
    this.held = [];
    this.unopened = undefined;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  async done(_job: JobObject): Promise<void> {}

  shown(): { content: string; toolCalls: boolean } {
    return { content: this.shownContent, toolCalls: this.shownTools || this.shownRefusal };
  }

  /** Sends what is held back (the answer succeeded, or the hold time passed). */
  flushHeld(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    const held = this.held;
    this.held = [];
    for (const { hop, part } of held) this.release(hop, part);
  }

  /** The last chunks of a successful answer: the finish reason, the usage if asked for, [DONE]. */
  finish(model: string, finishReason: string, usage: unknown | undefined): void {
    this.flushHeld();
    if (!this.opened) this.openAt(model);
    const unopened = this.unopened;
    this.unopened = undefined;
    if (unopened) this.release(unopened.hop, unopened.part);
    // An answer with no text and no tool calls: OpenAI still opens its stream with the role (and
    // an empty content), and the SDKs' stream helpers fail a choice that never had one.
    if (!this.roleSent) {
      this.roleSent = true;
      this.write(this.chunk(model, ROLE_DELTA, null));
    }
    this.write(this.chunk(model, {}, finishReason));
    if (usage !== undefined) {
      this.write(
        JSON.stringify({
          id: this.options.id,
          object: "chat.completion.chunk",
          created: this.options.created,
          model,
          system_fingerprint: null,
          choices: [],
          usage,
        }),
      );
    }
    this.write("[DONE]", true);
  }

  /** Drops what is held back and its timer (the caller left). */
  dispose(): void {
    this.held = [];
    this.unopened = undefined;
    this.pending = "";
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  /** Ends an opened stream with one error event and no [DONE] (the answer is not whole). */
  fail(error: { error: Record<string, unknown> }): void {
    this.held = [];
    this.unopened = undefined;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.write(JSON.stringify(error), true);
  }

  private modelOf(hop: number): string {
    return this.options.chainModels[hop] ?? this.options.chainModels[0] ?? "";
  }

  private openAt(model: string): void {
    this.opened = true;
    this.options.open(model, this.provider);
  }

  private release(hop: number, part: DeltaPart): void {
    if (part.content === undefined && part.refusal === undefined && !part.toolCalls?.length) {
      // Log probabilities alone: a chunk of their own, in their place, when they were asked for.
      if (part.logprobs === undefined || this.options.logprobs !== true) return;
      if (!this.opened) {
        this.unopened = { hop, part };
        return;
      }
    }
    const model = this.modelOf(hop);
    if (!this.opened) this.openAt(model);
    const delta: Record<string, unknown> = {};
    if (!this.roleSent) {
      this.roleSent = true;
      // As OpenAI's: an answer's text comes after a chunk of the role alone (code that skips that
      // chunk loses no token); its first tool call or refusal carries the role.
      if (part.content !== undefined) this.write(this.chunk(model, ROLE_DELTA, null));
      else delta.role = "assistant";
    }
    if (part.content !== undefined) {
      delta.content = part.content;
      this.shownContent += part.content;
    }
    if (part.refusal !== undefined) {
      delta.refusal = part.refusal;
      this.shownRefusal = true;
    }
    if (part.toolCalls?.length) {
      this.shownTools = true;
      delta.tool_calls = openAIToolCallDeltas(part.toolCalls);
    }
    const logprobs = part.logprobs !== undefined && this.options.logprobs === true ? part.logprobs : null;
    this.write(this.chunk(model, delta, null, logprobs));
  }

  private chunk(
    model: string,
    delta: Record<string, unknown>,
    finishReason: string | null,
    logprobs: unknown = null,
  ): string {
    return JSON.stringify({
      id: this.options.id,
      object: "chat.completion.chunk",
      created: this.options.created,
      model,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs, finish_reason: finishReason }],
      ...(this.options.includeUsage ? { usage: null } : {}),
    });
  }

  /**
   * Queues one `data:` event. Events that come in one turn of the event loop (a provider's TCP
   * read often holds several) go to the response as one write, one chunk of its chunked body,
   * when the turn's I/O has been handled; an answer that ends in that turn (its finish, usage and
   * [DONE], or its error event) goes with them in the response's end: one socket write.
   */
  private write(data: string, last = false): void {
    if (this.response.destroyed) return;
    const event = `data: ${data}\n\n`;
    if (event.length > this.longestEvent) this.longestEvent = event.length;
    this.pending += event;
    if (last) {
      const body = this.pending;
      this.pending = "";
      this.response.end(body);
      return;
    }
    // A caller that stopped reading while the provider goes on: what it has not taken piles up
    // here. Past MAX_UNREAD_BYTES beyond the longest event (one huge delta is not a caller gone:
    // one that reads at once still has it unread as the next events come) it is treated as gone
    // (the response's close aborts the call), rather than holding the completion in memory while
    // it keeps the socket. The engine bounds an answer's size, and so the longest event.
    if (this.response.writableLength + this.pending.length > MAX_UNREAD_BYTES + this.longestEvent) {
      this.pending = "";
      this.response.destroy();
      return;
    }
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushing = false;
    if (!this.pending) return;
    const body = this.pending;
    this.pending = "";
    if (!this.response.writableEnded && !this.response.destroyed) this.response.write(body);
  };
}
