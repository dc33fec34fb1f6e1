import type { JobObject, Keys } from "@cascade/shared";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { isTerminal, type JobStore } from "../jobs/job-store.js";
import type { JobWaiters } from "../jobs/job-waiters.js";
import { compareIds, isStreamId, type StreamEntry, type StreamReader } from "../jobs/stream-reader.js";
import { notFound } from "../plugins/http-error.js";
import type { OpenRequests } from "../plugins/open-requests.js";

const HEARTBEAT_MS = 15_000;
/** The id of the synthesized "queued" event of a streaming job: sorts before any real stream id. */
const QUEUED_ID = "0-1";
/** The sequence part of the id of a `done` the API makes up from an ended job's state. */
const MADE_UP_DONE_SEQ = 999_999;

const EVENT_STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  "x-accel-buffering": "no",
};

interface SseEvent {
  id: string;
  event: string;
  data: unknown;
}

/**
 * A non-streaming job's events, derived from its state: queued, running, one per attempt, then
 * the terminal status and `done`. Ids are positions in this list, stable across reconnects
 * because attempts are only ever appended.
 */
export function stateEvents(job: JobObject): SseEvent[] {
  const list: Array<Omit<SseEvent, "id">> = [{ event: "status", data: { status: "queued" } }];
  if (job.started_at !== null || job.attempts.length > 0)
    list.push({ event: "status", data: { status: "running" } });
  for (const attempt of job.attempts) list.push({ event: "attempt", data: attempt });
  if (isTerminal(job)) {
    list.push({ event: "status", data: { status: job.status } });
    list.push({ event: "done", data: job });
  }
  return list.map((event, index) => ({ ...event, id: String(index + 1) }));
}

function write(reply: FastifyReply, event: SseEvent): void {
  const data = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
  reply.raw.write(`id: ${event.id}\nevent: ${event.event}\ndata: ${data}\n\n`);
}

/** Part of a run's ending in a job's stream: its terminal status, or its `done`. */
function isEnding(entry: StreamEntry): boolean {
  return entry.event === "done" || (entry.event === "status" && TERMINAL_STATUS.test(entry.data));
}
const TERMINAL_STATUS = /"status":"(succeeded|failed|cancelled)"/;
/** The longest a streaming job's ending is held for its stored end (see the events route). */
const ENDING_WAIT_MS = 2_000;

/** The status a list of derived events last announced. */
function lastStatusOf(events: readonly SseEvent[]): string | undefined {
  for (let index = events.length - 1; index >= 0; index--) {
    const event = events[index] as SseEvent;
    if (event.event === "status") return (event.data as { status: string }).status;
  }
  return undefined;
}

export interface JobEventsDeps {
  store: JobStore;
  waiters: JobWaiters;
  streams: StreamReader;
  keys: Keys;
  /** The open event streams, ended cleanly at shutdown. */
  open: OpenEventStreams;
  /** Each tenant's requests held open on this process (`max_open_requests`). */
  openRequests: OpenRequests;
}

/**
 * The job event streams open now: on shutdown each is ended cleanly at once (its client resumes
 * elsewhere with Last-Event-ID) instead of holding the process for its whole grace; one that
 * opens after (its handler was still reading the job) ends as soon as it is added.
 */
export class OpenEventStreams {
  private readonly ends = new Set<() => void>();
  private closed = false;

  add(end: () => void): void {
    if (this.closed) end();
    else this.ends.add(end);
  }

  delete(end: () => void): void {
    this.ends.delete(end);
  }

  close(): void {
    this.closed = true;
    for (const end of [...this.ends]) end();
  }
}

/** GET /v1/jobs/:id/events: Server-Sent Events with Last-Event-ID resume and heartbeats. */
export function registerJobEventRoutes(app: FastifyInstance, deps: JobEventsDeps): void {
  const { store, waiters, streams, keys, open, openRequests } = deps;

  /** Whether a client resuming after `lastEventId` has had the ended job's `done` event. */
  async function hadDone(job: JobObject, streaming: boolean, lastEventId: string): Promise<boolean> {
    // The done the API makes up for a job that ended without its worker writing one (a streaming
    // job cancelled while queued, whose BullMQ job may be gone since): always the stream's last.
    if (isStreamId(lastEventId) && lastEventId.endsWith(`-${MADE_UP_DONE_SEQ}`)) return true;
    if (!streaming) return /^\d+$/.test(lastEventId) && Number(lastEventId) >= stateEvents(job).length;
    if (!isStreamId(lastEventId)) return false;
    // The worker's done is its stream's last entry: had if the client is at it or past it.
    const last = await streams.last(keys.jobEvents(job.id));
    return last?.event === "done" && compareIds(last.id, lastEventId) <= 0;
  }
  app.withTypeProvider<ZodTypeProvider>().get(
    "/v1/jobs/:id/events",
    {
      schema: {
        params: z.object({ id: z.string().min(1).max(200) }),
        querystring: z.object({ last_event_id: z.string().max(64).optional() }),
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      openRequests.hold(request, reply);
      const read = await store.read(request.tenant, id);
      if (!read) throw notFound(`no job with id ${id}`);
      const { job, streaming } = read;
      const header = request.headers["last-event-id"];
      const lastEventId = (typeof header === "string" ? header : request.query.last_event_id) ?? "";
      // A client that already had `done` (an EventSource that did not close on it, reconnecting):
      // 204, which tells EventSource to stop, rather than an empty stream every `retry` interval.
      if (isTerminal(job) && (await hadDone(job, streaming, lastEventId))) return reply.code(204).send();

      // HEAD (Fastify answers it for every GET route): the stream's status and headers, at once;
      // run as a GET, it was held open, with no status line, until the job ended.
      if (request.method === "HEAD") return reply.code(200).headers(EVENT_STREAM_HEADERS).send();
      reply.hijack();
      reply.raw.writeHead(200, EVENT_STREAM_HEADERS);
      reply.raw.write("retry: 2000\n\n");
      const cleanups: Array<() => void> = [];
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        for (const cleanup of cleanups) cleanup();
        reply.raw.end();
      };
      // What is registered after the stream ended (the client left during an await) is undone at once.
      const onEnd = (cleanup: () => void) => {
        if (ended) cleanup();
        else cleanups.push(cleanup);
      };
      request.raw.once("close", end);
      const heartbeat = setInterval(() => reply.raw.write(": keep-alive\n\n"), HEARTBEAT_MS);
      cleanups.push(() => clearInterval(heartbeat));
      // Last: while the API shuts down this ends the stream at once, undoing the above.
      cleanups.push(() => open.delete(end));
      open.add(end);
      // A client that left before the close listener was there: no close event will come.
      if (request.raw.socket?.destroyed || reply.raw.destroyed) end();
      if (ended) return;

      if (!streaming) {
        let sent = /^\d+$/.test(lastEventId) ? Number(lastEventId) : 0;
        // The status this client was last told (by the derived list or live, below).
        let told: string | undefined;
        // A job that went back to the queue to wait for a limit, or runs again after it: the
        // derived list (what a reconnect replays) cannot hold such back-and-forth, so the current
        // status is said live, without an id (a reconnect gets it again after the list).
        const tellLive = (status: string) => {
          reply.raw.write(`event: status\ndata: ${JSON.stringify({ status })}\n\n`);
          told = status;
        };
        const emit = (current: JobObject) => {
          const events = stateEvents(current);
          told ??= lastStatusOf(events.slice(0, sent));
          const fresh = events.slice(sent);
          sent = Math.max(sent, events.length);
          const terminal = isTerminal(current);
          // Running again, with attempts made since: the status comes before them.
          if (!terminal && current.status !== told && lastStatusOf(fresh) === undefined)
            tellLive(current.status);
          for (const event of fresh) write(reply, event);
          told = lastStatusOf(fresh) ?? told;
          if (terminal) {
            end();
            return;
          }
          if (current.status !== told) tellLive(current.status);
        };
        let refreshing = Promise.resolve();
        const refresh = () => {
          refreshing = refreshing
            .then(async () => {
              if (ended) return;
              const current = await store.get(request.tenant, id);
              if (current) emit(current);
              else end();
            })
            // Redis gone mid-stream: end this response; the client reconnects with Last-Event-ID.
            .catch(() => end());
        };
        onEnd(waiters.watch(id, refresh));
        emit(job);
        // The job may have moved between the first read and the watch: look once more.
        refresh();
        return;
      }

      // A streaming job: its worker writes every event to the job's Redis stream.
      const key = keys.jobEvents(id);
      // An id Redis could not hold (past 64 bits) is no id: the client gets the stream from the start.
      let lastSent = isStreamId(lastEventId) ? lastEventId : "0-0";
      let sawDone = false;
      // The newest entry of the job's stream, sent or not: what a made-up ending is numbered after.
      let tail = "0-0";
      // A run writes its ending (the terminal `status`, then `done`) just before BullMQ stores the
      // job's end: a client that read the job on `done` could be shown it still running (a
      // black-box audit). The ending is held until the job's state says it ended (the watch below
      // wakes on BullMQ's event; a held ending also looks itself, backing off), for at most
      // ENDING_WAIT_MS: then, or if anything else comes after it, it is sent as it is.
      const held: StreamEntry[] = [];
      let endedForSure = false;
      let confirming = false;
      const deliver = (entry: StreamEntry) => {
        if (compareIds(entry.id, lastSent) > 0) {
          write(reply, entry);
          lastSent = entry.id;
        }
        // A done the client already had (it resumed after it) ends the stream just the same.
        if (entry.event === "done") {
          sawDone = true;
          end();
        }
      };
      const release = () => {
        for (const entry of held.splice(0)) {
          if (ended) return;
          deliver(entry);
        }
      };
      const send = (entries: StreamEntry[]) => {
        for (const entry of entries) {
          if (ended) return;
          if (compareIds(entry.id, tail) > 0) tail = entry.id;
          const fresh = compareIds(entry.id, lastSent) > 0;
          if (fresh && !endedForSure && (held.length > 0 || isEnding(entry))) {
            // Entries may be delivered twice around a follow's registration.
            if (held.some((kept) => kept.id === entry.id)) continue;
            held.push(entry);
            if (isEnding(entry)) void confirmEnded();
            else release();
            continue;
          }
          deliver(entry);
        }
      };
      /** Sends the held ending once the job's state says it ended, or its wait is over. */
      const confirmEnded = async () => {
        if (confirming) return;
        confirming = true;
        const until = Date.now() + ENDING_WAIT_MS;
        let waitMs = 10;
        try {
          while (!ended && held.length > 0) {
            const current = await store.get(request.tenant, id).catch(() => undefined);
            if (ended || held.length === 0) return;
            // Gone, unreadable, ended, or waited for long enough: sent as the run wrote it.
            if (!current || isTerminal(current) || Date.now() >= until) {
              release();
              return;
            }
            await new Promise((resolve) => setTimeout(resolve, waitMs));
            waitMs = Math.min(waitMs * 2, 200);
          }
        } finally {
          confirming = false;
        }
      };
      if (compareIds(lastSent, QUEUED_ID) < 0) {
        write(reply, { id: QUEUED_ID, event: "status", data: { status: "queued" } });
        lastSent = QUEUED_ID;
      }
      // Redis failing here ends the response (the client reconnects with Last-Event-ID).
      const replay = await streams.range(key, "0").catch(() => {
        end();
        return [];
      });
      if (ended) return;
      send(replay);
      if (ended) return;
      onEnd(streams.follow(key, replay[replay.length - 1]?.id ?? "0-0", send));
      // A job that ends without its worker writing `done` (cancelled while queued, failed outside
      // the chain) still ends the stream, from its state.
      const checkEnded = async () => {
        const current = await store.get(request.tenant, id);
        if (ended || !current || !isTerminal(current)) return;
        endedForSure = true;
        // What is held goes first, in order: the read below may be overtaken by the follow.
        release();
        if (ended) return;
        send(await streams.range(key, lastSent));
        if (!sawDone && !ended) {
          // Numbered after every entry the stream held (even one since expired: the job's end
          // is after them all), and the same on every reconnect, so that a client resuming after
          // them (they are the last it gets) is not sent them again.
          const [tailMs = "0"] = tail.split("-");
          const endMs = Math.max(Number(tailMs), ((current.finished_at ?? 0) + 1) * 1000);
          const ending: SseEvent[] = [
            { id: `${endMs}-${MADE_UP_DONE_SEQ - 1}`, event: "status", data: { status: current.status } },
            { id: `${endMs}-${MADE_UP_DONE_SEQ}`, event: "done", data: current },
          ];
          for (const entry of ending) if (compareIds(entry.id, lastSent) > 0) write(reply, entry);
          end();
        }
      };
      onEnd(waiters.watch(id, () => void checkEnded().catch(() => end())));
      await checkEnded().catch(() => end());
    },
  );
}
