import { isIP } from "node:net";
import { Agent, buildConnector } from "undici";
import {
  assertPublicAddress,
  createGuardedLookup,
  type HostResolver,
  normalizeHostname,
  UrlRejectedError,
} from "./url-guard.js";

export interface GuardedDispatcherOptions {
  /** `webhooks.allow_private_networks`: connect anywhere (local development, tests). */
  allowPrivateNetworks: boolean;
  /** Resolver used at connect time; tests inject one to play a rebinding DNS server. */
  resolve?: HostResolver;
}

/**
 * An undici Agent for requests to user-supplied URLs. Unless private networks are allowed, every
 * new connection resolves its host itself and checks every address right there, so the socket
 * connects only to an address that was checked (a DNS answer that changes between an earlier
 * check and the connect, i.e. DNS rebinding, cannot slip through). IP literals skip `lookup` in
 * `net.connect`, so the connector checks them before connecting. A refused connection fails the
 * request with a UrlRejectedError (code ERR_CASCADE_URL_REJECTED).
 */
export function createGuardedDispatcher(options: GuardedDispatcherOptions): Agent {
  const common = { keepAliveTimeout: 4_000, headersTimeout: 0, bodyTimeout: 0 };
  if (options.allowPrivateNetworks) return new Agent(common);
  const connect = buildConnector({ lookup: createGuardedLookup(options.resolve) });
  const guardedConnect: buildConnector.connector = (connectOptions, callback) => {
    const host = normalizeHostname(connectOptions.hostname);
    if (isIP(host)) {
      try {
        assertPublicAddress(host, host);
      } catch (error) {
        callback(error as UrlRejectedError, null);
        return;
      }
    }
    connect(connectOptions, callback);
  };
  return new Agent({ ...common, connect: guardedConnect });
}

/** The UrlRejectedError behind a failed request, however undici wrapped it. */
export function findUrlRejection(error: unknown): UrlRejectedError | undefined {
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth += 1) {
    if (current instanceof UrlRejectedError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
