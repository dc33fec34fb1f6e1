/**
 * Preloaded into the Portkey gateway (`node --import <this> start-server.js --port=N --headless`).
 * Two workarounds, nothing else in the process is changed:
 *
 * 1. Loopback only. start-server calls `serve({ fetch, port })` with no hostname, which listens on
 *    every interface, and has no flag or variable for the address: a `listen(port)` without a
 *    host is made to listen on 127.0.0.1.
 * 2. Streaming. pnpm resolves Portkey's `@hono/node-server: ^1.3.3` to a current 1.19, whose
 *    lightweight global `Response`, built with a native fetch `Response` as its init, keeps that
 *    response's immutable `Headers`; Portkey then appends its `x-portkey-*` headers to them and
 *    every stream fails with `TypeError: immutable` (Portkey-AI/gateway issues #1389, #1550). As
 *    Portkey's own fix (PR #1551) does, such an init is passed on as a plain init with a mutable
 *    copy of its headers. Without this, Portkey answers every `stream: true` request with a 500.
 */
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  if (typeof args[0] === "number" && (args[1] === undefined || typeof args[1] === "function")) {
    const callback = typeof args[1] === "function" ? args[1] : args[2];
    return listen.call(this, args[0], "127.0.0.1", ...(callback ? [callback] : []));
  }
  return listen.apply(this, args);
};

const NativeResponse = globalThis.Response;
const defineProperty = Object.defineProperty;
Object.defineProperty = function defineGlobalResponse(target, key, descriptor) {
  const Light = descriptor?.value;
  if (
    target === globalThis &&
    key === "Response" &&
    typeof Light === "function" &&
    Light !== NativeResponse
  ) {
    class CompatibleResponse extends Light {
      constructor(body, init) {
        const native = init instanceof NativeResponse && !(init instanceof Light);
        super(
          body,
          native
            ? { status: init.status, statusText: init.statusText, headers: new Headers(init.headers) }
            : init,
        );
      }
    }
    return defineProperty(target, key, { ...descriptor, value: CompatibleResponse });
  }
  return defineProperty(target, key, descriptor);
};
