import type { Socket } from "node:net";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MIN_BODY_BYTES_PER_S } from "./body-deadline.js";
import { declaresBody } from "./http-error.js";

/** A refused body may keep coming this long before its rate counts. */
export const LINGER_GRACE_MS = 1_000;
/** The longest a connection lingers after its answer (nginx's lingering_time). */
export const LINGER_MAX_MS = 30_000;
/** How often a lingering connection's rate is checked. */
const LINGER_CHECK_MS = 250;

/** Connections answered `connection: close` (no request after that answer is run on them). */
const closing = new WeakSet<Socket>();
/** Connections lingering now: cut at once when the server closes (shutdown waits for none). */
const lingering = new Set<Socket>();

/**
 * A request answered before its body was read, with `connection: close` (a refusal: no key, a
 * tenant out of file storage, no such route; closeAfterAnswer in auth.ts and routes/files.ts;
 * marked there, not by a hook on every answer), keeps its
 * connection open for reading after the answer: the write side is closed once the answer is out
 * (a FIN), and what still comes of the body is read and dropped, until the client closes its side
 * or the body falls behind MIN_BODY_BYTES_PER_S after LINGER_GRACE_MS, or LINGER_MAX_MS pass.
 * Node closed such a connection at once: a client still sending (the official SDK streams its
 * multipart body, and reads the answer once it has sent it) got EPIPE or a reset that discarded
 * the answer, so it saw a connection error instead of the 401, 400 or 404 (and retried). A
 * trickling client is still cut off within about a second (RFC 9112 §9.6, "lingering close").
 */
export function registerLingeringClose(app: FastifyInstance): void {
  // Registered before every other onRequest hook (auth, the Redis gate): a request that arrives
  // on a connection answered `connection: close` (a client pipelining behind a refused body) is
  // not run (RFC 9112 §9.6), and gets no answer: its client sends it again on a new connection.
  app.addHook("onRequest", (request, reply, done) => {
    const socket = request.raw.socket;
    if (socket && closing.has(socket)) {
      // Left alone: the connection's own end (its linger, or Node's close after the answer)
      // closes it; destroyed here, unread input would reset it and could lose that answer.
      reply.hijack();
      return;
    }
    done();
  });
  // A lingering upload must not hold the server's close (SHUTDOWN_TIMEOUT_MS) for 30 s.
  app.addHook("preClose", (done) => {
    for (const socket of lingering) socket.destroy();
    lingering.clear();
    done();
  });
}

/**
 * Answers the request with `connection: close`, for a refusal made before its body was read (so
 * nobody holds the connection by trickling a body): the connection lingers after the answer (see
 * registerLingeringClose) when some of the body is still to come.
 */
export function closeAfterAnswer(request: FastifyRequest, reply: FastifyReply): void {
  reply.header("connection", "close");
  const socket = request.raw.socket;
  if (!socket || closing.has(socket)) return;
  closing.add(socket);
  if (!request.raw.complete && declaresBody(request)) lingerOnClose(socket);
}

/** Makes Node's close of the connection after this answer (destroySoon) a lingering close. */
function lingerOnClose(socket: Socket): void {
  if (lingering.has(socket)) return;
  const destroySoon = socket.destroySoon;
  socket.destroySoon = function lingeringClose(this: Socket) {
    socket.destroySoon = destroySoon;
    if (socket.destroyed) return;
    lingering.add(socket);
    // The answer goes, then the FIN; the read side stays open (Node's HTTP sockets allow half-open).
    socket.end();
    const startedAt = Date.now();
    const readBefore = socket.bytesRead;
    const check = setInterval(() => {
      const elapsedMs = Date.now() - startedAt;
      const behind =
        elapsedMs > LINGER_GRACE_MS &&
        socket.bytesRead - readBefore < ((elapsedMs - LINGER_GRACE_MS) / 1000) * MIN_BODY_BYTES_PER_S;
      if (behind || elapsedMs >= LINGER_MAX_MS) socket.destroy();
    }, LINGER_CHECK_MS);
    check.unref();
    socket.once("close", () => {
      clearInterval(check);
      lingering.delete(socket);
    });
    // The client has sent all it will: nothing is left to wait for once the answer is written.
    socket.once("end", () => {
      if (socket.writableFinished) socket.destroy();
      else socket.once("finish", () => socket.destroy());
    });
    // Whatever comes is dropped (the request's parser, once the answer is out, reads nothing of it).
    socket.on("data", () => {});
    socket.resume();
  };
}
