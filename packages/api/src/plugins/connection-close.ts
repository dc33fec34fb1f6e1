import type { Socket } from "node:net";
import type { FastifyRequest } from "fastify";

/** Callbacks waiting for each connection's close: one `close` listener per connection. */
const waiting = new WeakMap<Socket, Set<() => void>>();

/**
 * Calls `callback` once when the request's connection closes; returns what cancels that (call it
 * when the request is done). A response's own `close` covers a request answered on its
 * connection; a pipelined request (HTTP/1.1: several sent on one connection before the first
 * answer) is handled while its response waits for the socket, and if the connection drops first
 * that response never closes: only the connection says the caller is gone. One listener per
 * connection, however many requests it pipelines (no listener-leak warning).
 */
export function onConnectionClose(request: FastifyRequest, callback: () => void): () => void {
  const socket: Socket | undefined = request.raw.socket ?? undefined;
  if (!socket) return () => {};
  let callbacks = waiting.get(socket);
  if (!callbacks) {
    const set = new Set<() => void>();
    callbacks = set;
    waiting.set(socket, set);
    socket.once("close", () => {
      waiting.delete(socket);
      for (const next of [...set]) next();
    });
  }
  const once = () => callback();
  callbacks.add(once);
  const registered = callbacks;
  return () => {
    registered.delete(once);
  };
}
