import type { Attempt, JobObject, Logger } from "@cascade/shared";
import { openAIToolCallDeltas, type StreamDelta, type ToolCallDelta } from "../providers/types.js";

/** How long streamed text is gathered before it is written as one `delta` event. */
const DELTA_FLUSH_MS = 50;
const DELTA_FLUSH_CHARS = 512;
/** A stream never grows past this many events (a runaway completion cannot fill Redis). */
const MAX_EVENTS = 20_000;

/** One event of a streaming job's event stream. */
export interface StreamEvent {
  event: string;
  /** JSON. */
  data: string;
}

/**
 * Where a run's events go: the worker's implementation appends to the job's Redis stream only
 * while its run holds the job (so a run that lost its job to another worker changes nothing).
 */
export interface EventStreamAppender {
  /** Appends the events; false (nothing written) when this run may no longer write. */
  appendEvents(events: StreamEvent[], maxEvents: number, retentionSeconds: number): Promise<boolean>;
  /** The stream's last `count` events, newest first (what an earlier run of the job wrote). */
  recentEvents?(count: number): Promise<StreamEvent[]>;
}

/** How far back a resumed run looks for an earlier run's deltas left standing. */
const RESUMED_TAIL_EVENTS = 64;

/**
 * The hop whose deltas end the stream with no `restart` after them: what an earlier run of the
 * job showed before it stopped mid-answer (its worker killed, or its lock lost while it
 * streamed). `events` newest first.
 */
export function unrestartedHop(events: readonly StreamEvent[]): number | undefined {
  for (const { event, data } of events) {
    if (event === "restart" || event === "done") return undefined;
    if (event === "delta") {
      const hop = (JSON.parse(data) as { hop?: unknown }).hop;
      return typeof hop === "number" ? hop : undefined;
    }
  }
  return undefined;
}

/** What the chain runner reports while it runs a streaming job. */
export interface JobEventSink {
  status(status: string): void;
  attempt(attempt: Attempt): void;
  delta(hop: number, part: StreamDelta): void;
  /** A call is about to go out on this provider (and, for a pooled model, deployment). */
  calling?(hop: number, provider: string, deployment: string | undefined): void;
  /** Drop what the hop streamed so far: it failed and another hop (or try) starts over. */
  restart(hop: number, reason: string): void;
  /** Ends the stream with the final job object; resolves when everything is written. */
  done(job: JobObject): Promise<void>;
  /**
   * The run hands the job back to the queue to wait (for a limit): says `queued`; resolves when
   * written (before the run gives up the job, and with it the right to write).
   */
  queued?(): Promise<void>;
}

/**
 * Writes a streaming job's events to its Redis stream (read by GET /v1/jobs/:id/events). Deltas
 * are batched for up to 50 ms so a fast token stream costs a few writes a second, not one per
 * token. Writes are made in order and never block the provider stream. Each goes through the
 * run's lock (`RunLock`): once this run has lost the job to another worker, its events are
 * dropped, so the stream tells only what the run holding the job did.
 */
export function createJobEventWriter(options: {
  lock: EventStreamAppender;
  jobId: string;
  /** How long the stream is kept after the job's end (its `done`). */
  retentionSeconds: number;
  /**
   * The job's deadline (ms): until then it may still wait between events (in the delayed set,
   * for a limit), so an event before its end keeps the stream that much longer.
   */
  deadlineAt?: number;
  /**
   * Not the job's first run (it waited for a limit, or its worker died or lost the lock): an
   * earlier run's deltas may end the stream, and a reader would add this run's answer to them.
   * The writer first says `restart` for their hop (`network_error`: the stream that carried them
   * was cut), before anything of its own.
   */
  resumed?: boolean;
  now?: () => number;
  logger: Logger;
}): JobEventSink {
  let pending: { hop: number; content: string; refusal: string; toolCalls: ToolCallDelta[] } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  /** Hops that wrote a delta since their last restart (a restart of any other tells nothing). */
  const shown = new Set<number>();
  const now = options.now ?? Date.now;
  /** The stream's lifetime from an event: after the end, the retention; before it, the deadline's wait too. */
  const lifetimeS = (final: boolean) =>
    final || options.deadlineAt === undefined
      ? options.retentionSeconds
      : options.retentionSeconds + Math.max(0, Math.ceil((options.deadlineAt - now()) / 1000));
  const append = (event: string, data: unknown, final = false) => {
    const entry = { event, data: JSON.stringify(data) };
    const retentionSeconds = lifetimeS(final);
    chain = chain
      .then(() => options.lock.appendEvents([entry], MAX_EVENTS, retentionSeconds))
      .catch((error: Error) =>
        options.logger.warn({ job_id: options.jobId, err: error.message }, "could not write a job event"),
      );
  };
  const recentEvents = options.lock.recentEvents?.bind(options.lock);
  if (options.resumed && recentEvents) {
    chain = chain
      .then(async () => {
        const hop = unrestartedHop(await recentEvents(RESUMED_TAIL_EVENTS));
        if (hop === undefined) return;
        const restart = { event: "restart", data: JSON.stringify({ hop, reason: "network_error" }) };
        await options.lock.appendEvents([restart], MAX_EVENTS, lifetimeS(false));
      })
      .catch((error: Error) =>
        options.logger.warn(
          { job_id: options.jobId, err: error.message },
          "could not read what an earlier run of the job streamed",
        ),
      );
  }
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!pending) return;
    const { hop, content, refusal, toolCalls } = pending;
    pending = undefined;
    append("delta", {
      hop,
      ...(content ? { content } : {}),
      // The model declining (OpenAI's `delta.refusal`): the job's result carries `message.refusal`.
      ...(refusal ? { refusal } : {}),
      // OpenAI's chunk shape, as the gateway streams them.
      ...(toolCalls.length ? { tool_calls: openAIToolCallDeltas(toolCalls) } : {}),
    });
  };

  return {
    status(status) {
      flush();
      append("status", { status });
    },
    attempt(attempt) {
      flush();
      append("attempt", attempt);
    },
    delta(hop, part) {
      // A job's delta events carry text and tool calls, not log probabilities (the result has them).
      if (!part.content && !part.refusal && !part.toolCalls?.length) return;
      if (pending && pending.hop !== hop) flush();
      shown.add(hop);
      pending ??= { hop, content: "", refusal: "", toolCalls: [] };
      if (part.content) pending.content += part.content;
      if (part.refusal) pending.refusal += part.refusal;
      if (part.toolCalls) pending.toolCalls.push(...part.toolCalls);
      if (pending.content.length >= DELTA_FLUSH_CHARS) flush();
      else timer ??= setTimeout(flush, DELTA_FLUSH_MS);
    },
    restart(hop, reason) {
      // A hop that wrote no delta (it sent log probabilities alone, which job events leave out)
      // showed a reader nothing to drop.
      if (!shown.has(hop) && pending?.hop !== hop) return;
      shown.delete(hop);
      // What the hop streamed is written first, so the stream tells what really happened.
      flush();
      append("restart", { hop, reason });
    },
    async done(job) {
      flush();
      append("status", { status: job.status }, true);
      append("done", job, true);
      await chain;
    },
    async queued() {
      flush();
      append("status", { status: "queued" });
      await chain;
    },
  };
}
