import type { Socket } from "node:net";
import type { FastifyInstance, FastifyReply } from "fastify";
import { sendError } from "./error-handler.js";
import { declaresBody } from "./http-error.js";

/** A body may take this long to start flowing before its rate counts. */
export const BODY_GRACE_MS = 10_000;
/**
 * The slowest a body may arrive after the grace, on average (16 KiB/s: a 1 MiB request body in
 * ~74 s, a 100 MiB upload in ~1.8 h, which the hour's request timeout cuts first).
 */
export const MIN_BODY_BYTES_PER_S = 16 * 1024;
/** How often a body still being read is checked against the rate. */
const BODY_CHECK_MS = 2_000;

/**
 * A body that does not come cannot hold its connection (and what was read of it) for the hour of
 * the request timeout (docs/decisions/0005-errors-and-limits.md, slow bodies). After BODY_GRACE_MS
 * a request's body must have arrived at MIN_BODY_BYTES_PER_S on average (bytes its connection
 * read since its headers); one that falls behind is answered 408 `request_timeout` and its
 * connection closed. Runs after auth: a request refused there is answered, and closed, at once.
 */
export function registerBodyDeadline(app: FastifyInstance): void {
  /** Requests whose body is being read, checked together (one timer, not one per request). */
  const reading = new Set<BodyRead>();
  let sweep: NodeJS.Timeout | undefined;
  const check = () => {
    const now = Date.now();
    for (const read of reading) {
      const { reply, socket } = read;
      if (reply.request.raw.complete || reply.sent || socket.destroyed) {
        read.forget();
        continue;
      }
      const overGraceS = (now - read.startedAt - BODY_GRACE_MS) / 1000;
      if (overGraceS <= 0 || socket.bytesRead - read.readBefore >= overGraceS * MIN_BODY_BYTES_PER_S)
        continue;
      read.forget();
      tooSlow(reply);
    }
    if (reading.size === 0 && sweep) {
      clearInterval(sweep);
      sweep = undefined;
    }
  };
  app.addHook("onRequest", (request, reply, done) => {
    const socket = request.raw.socket;
    if (!declaresBody(request) || request.raw.complete || !socket) return done();
    const read: BodyRead = {
      reply,
      socket,
      startedAt: Date.now(),
      readBefore: socket.bytesRead,
      forget: () => {
        reading.delete(read);
        reply.raw.off("close", read.forget);
      },
    };
    reading.add(read);
    reply.raw.once("close", read.forget);
    if (!sweep) {
      sweep = setInterval(check, BODY_CHECK_MS);
      sweep.unref();
    }
    done();
  });
}

interface BodyRead {
  reply: FastifyReply;
  socket: Socket;
  startedAt: number;
  /** Bytes its connection had read when its headers were in. */
  readBefore: number;
  forget: () => void;
}

function tooSlow(reply: FastifyReply): void {
  reply.header("connection", "close");
  // Closed once answered: reading and dropping the rest would let the trickle go on.
  reply.raw.once("finish", () => reply.request.raw.socket?.destroy());
  sendError(
    reply,
    408,
    "invalid_request_error",
    `the request body arrived slower than ${MIN_BODY_BYTES_PER_S / 1024} KiB/s after its first ` +
      `${BODY_GRACE_MS / 1000} s; send it at once (a file of any size at a steady rate)`,
    undefined,
    "request_timeout",
  );
}
