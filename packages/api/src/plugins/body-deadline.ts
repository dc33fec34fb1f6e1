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

/** A request whose body is still coming. */
interface BodyRead {
  raw: IncomingMessage;
  socket: Socket;
  startedAt: number;
  /** Bytes its connection had read when its body's reading began. */
  readBefore: number;
  forget: () => void;
}

/**
 * A body that does not come cannot hold its connection (and what was read of it) for the hour of
 * the request timeout (docs/decisions/0005-api-error-types.md, "a body must keep coming"). From
 * the moment its reading may begin (preParsing: after auth and the Redis gate), a request's body
 * must have arrived at MIN_BODY_BYTES_PER_S on average once BODY_GRACE_MS have passed (bytes its
 * connection read since then); one that falls behind has its request, and so its connection,
 * destroyed. Nothing is answered from here: an answer may be under way already (a streamed
 * file, an early 415 while Node reads and drops the rest), and a request destroyed mid-body ends
 * every reader of it (JSON parsing, a multipart upload, which cleans up what it stored). A body
 * read to its end, or never to be read (the request destroyed), is forgotten at once.
 */
export function registerBodyDeadline(app: FastifyInstance): void {
  const reading = new Set<BodyRead>();
  let sweep: NodeJS.Timeout | undefined;
  const check = () => {
    const now = Date.now();
    for (const read of reading) {
      const { raw, socket } = read;
      if (raw.complete || raw.destroyed || socket.destroyed) {
        read.forget();
        continue;
      }
      const overGraceS = (now - read.startedAt - BODY_GRACE_MS) / 1000;
      if (overGraceS <= 0 || socket.bytesRead - read.readBefore >= overGraceS * MIN_BODY_BYTES_PER_S)
        continue;
      read.forget();
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
    if (!declaresBody(request) || raw.complete || !socket) return done(null, payload);
    const read: BodyRead = {
      raw,
      socket,
      startedAt: Date.now(),
      readBefore: socket.bytesRead,
      forget: () => {
        reading.delete(read);
        raw.off("end", read.forget);
        raw.off("close", read.forget);
      },
    };
    reading.add(read);
    raw.once("end", read.forget);
    raw.once("close", read.forget);
    if (!sweep) {
      sweep = setInterval(check, BODY_CHECK_MS);
      sweep.unref();
    }
    done(null, payload);
  });
}
