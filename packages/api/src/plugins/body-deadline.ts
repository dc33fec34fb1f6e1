import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { declaresBody } from "./http-error.js";

/** A body may take this long to start flowing before its rate counts. */
export const BODY_GRACE_MS = 10_000;
/**
 * The slowest a body may arrive after the grace, on average (16 KiB/s: a 1 MiB request body in
 * ~74 s, a 100 MiB upload in ~1.8 h, which the hour's request timeout cuts first).
 */
export const MIN_BODY_BYTES_PER_S = 16 * 1024;
/** How often the bodies being read are checked against the rate. */
const BODY_CHECK_MS = 2_000;

/**
 * The body a connection is reading (HTTP/1.1 reads one request's body at a time): kept only while
 * it is incomplete, so a request whose body came whole with its headers (most) costs nothing, and
 * the sweep drops a body read to its end (or a request or connection ended otherwise).
 */
interface BodyRead {
  raw: IncomingMessage;
  startedAt: number;
  /** Bytes its connection had read when this body's reading began. */
  readBefore: number;
}

/**
 * A body that does not come cannot hold its connection (and what was read of it) for the hour of
 * the request timeout (docs/decisions/0005-api-error-types.md, "a body must keep coming"). From
 * the moment its reading may begin (preParsing: after auth and the Redis gate), a request's body
 * must have arrived at MIN_BODY_BYTES_PER_S on average once BODY_GRACE_MS have passed (bytes its
 * connection read since then); one that falls behind has its request, and so its connection,
 * destroyed. Nothing is answered from here: an answer may be under way already (a streamed
 * file, an early 415 while Node reads and drops the rest), and a request destroyed mid-body ends
 * every reader of it (JSON parsing, a multipart upload, which cleans up what it stored).
 */
export function registerBodyDeadline(app: FastifyInstance): void {
  const reading = new Map<Socket, BodyRead>();
  let sweep: NodeJS.Timeout | undefined;
  const check = () => {
    const now = Date.now();
    for (const [socket, read] of reading) {
      const { raw } = read;
      if (socket.destroyed || raw.complete || raw.destroyed) {
        reading.delete(socket);
        continue;
      }
      const overGraceS = (now - read.startedAt - BODY_GRACE_MS) / 1000;
      if (overGraceS <= 0 || socket.bytesRead - read.readBefore >= overGraceS * MIN_BODY_BYTES_PER_S)
        continue;
      raw.destroy();
    }
    if (reading.size === 0 && sweep) {
      clearInterval(sweep);
      sweep = undefined;
    }
  };
  app.addHook("preParsing", (request, _reply, payload, done) => {
    const { raw } = request;
    const socket = raw.socket;
    if (!declaresBody(request) || raw.complete || !socket || socket.destroyed) return done(null, payload);
    reading.set(socket, { raw, startedAt: Date.now(), readBefore: socket.bytesRead });
    if (!sweep) {
      sweep = setInterval(check, BODY_CHECK_MS);
      sweep.unref();
    }
    done(null, payload);
  });
}
