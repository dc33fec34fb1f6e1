import { promises as dns, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { blockedAddressReason } from "./ip-ranges.js";

/** Resolves a hostname to every address it has, like `dns.lookup(host, { all: true })`. */
export type HostResolver = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolver: HostResolver = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

/** A lookup refused because too many wait already (no answer to be had from DNS now). */
export class LookupsBusyError extends Error {
  constructor(host: string) {
    super(`host "${host}" was not looked up: too many lookups of names from requests are waiting`);
    this.name = "LookupsBusyError";
  }
}

export interface BoundedResolverOptions {
  /** Lookups running at once (default 1). */
  atOnce?: number;
  /** How long an answer is kept (default 60 s), and a failure (default 5 s). */
  keepMs?: number;
  failureKeepMs?: number;
  /** Lookups that may wait for a slot (default 256); past them, LookupsBusyError at once. */
  maxQueued?: number;
  /** Answers kept at most (default 10,000; the oldest go first). */
  maxKept?: number;
  /** A lookup holds its slot at most this long, ended or not (default 30 s). */
  holdMs?: number;
}

/**
 * A resolver for names that requests bring (image URLs before a call).
 * `dns.lookup` runs getaddrinfo on libuv's thread pool, a timeout does not cancel it, and Node
 * lets lookups take at most half the pool: one request naming hosts under a name server that never
 * answers held every other lookup of the process (connections to providers included) for minutes.
 * Here at most `atOnce` lookups run at a time, each holding its slot until getaddrinfo itself ends
 * (not until a caller stops waiting); one per name however many callers ask; answers kept a while.
 * getaddrinfo is kept, not c-ares: it reads /etc/hosts and the search domains (a Kubernetes
 * service's short name), as a provider or receiver on this network resolves them.
 */
export class BoundedResolver {
  private readonly kept = new Map<string, { result: Promise<LookupAddress[]>; until: number }>();
  private readonly pending = new Map<string, Promise<LookupAddress[]>>();
  private readonly queue: Array<() => void> = [];
  private running = 0;

  constructor(
    private readonly resolve: HostResolver,
    private readonly options: BoundedResolverOptions = {},
  ) {}

  readonly lookup: HostResolver = (host) => {
    const kept = this.kept.get(host);
    if (kept && kept.until > Date.now()) return kept.result;
    const pending = this.pending.get(host);
    if (pending) return pending;
    if (this.queue.length >= (this.options.maxQueued ?? 256))
      return Promise.reject(new LookupsBusyError(host));
    const lookup = this.slot().then(() => {
      // The slot is given back once, when the lookup ends or at the latest after `holdMs`: a
      // getaddrinfo that never returns (a hung NSS module) must not keep the only slot for good.
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        clearTimeout(bound);
        this.running -= 1;
        this.queue.shift()?.();
      };
      const bound = setTimeout(release, this.options.holdMs ?? 30_000);
      bound.unref();
      // A resolver that throws (rather than rejects) still gives its slot back.
      return Promise.resolve()
        .then(() => this.resolve(host))
        .finally(release);
    });
    this.pending.set(host, lookup);
    lookup.then(
      () => this.keep(host, lookup, this.options.keepMs ?? 60_000),
      () => this.keep(host, lookup, this.options.failureKeepMs ?? 5_000),
    );
    return lookup;
  };

  private slot(): Promise<void> {
    if (this.running < (this.options.atOnce ?? 1)) {
      this.running += 1;
      return Promise.resolve();
    }
    return new Promise((start) =>
      this.queue.push(() => {
        this.running += 1;
        start();
      }),
    );
  }

  private keep(host: string, result: Promise<LookupAddress[]>, forMs: number): void {
    this.pending.delete(host);
    if (this.kept.size >= (this.options.maxKept ?? 10_000)) {
      const oldest = this.kept.keys().next().value;
      if (oldest !== undefined) this.kept.delete(oldest);
    }
    this.kept.delete(host);
    this.kept.set(host, { result, until: Date.now() + forMs });
  }
}

/**
 * The process's resolver of the image hosts requests bring (the image URL guard): one lookup at a
 * time (BoundedResolver). Not shared with the webhook URL check at enqueue, so that one tenant's
 * slow image names cannot fail other tenants' webhook checks.
 */
export const untrustedResolver: HostResolver = new BoundedResolver(systemResolver).lookup;

export type UrlRejection = "invalid_url" | "blocked_host" | "blocked_address" | "unresolvable";

/**
 * A user-supplied URL Cascade will not call. `reason` tells a bad URL apart from one that merely
 * failed to resolve; the message is written for the user who supplied the URL.
 */
export class UrlRejectedError extends Error {
  /** Stable code, also visible when undici wraps this error as a connection error's cause. */
  readonly code = "ERR_CASCADE_URL_REJECTED";
  /** What is wrong with the URL, without the advice on `allow_private_networks` (callers word their own). */
  readonly why: string;
  constructor(
    readonly reason: UrlRejection,
    message: string,
    why?: string,
  ) {
    super(message);
    this.name = "UrlRejectedError";
    this.why = why ?? message;
  }
}

export interface UrlGuardOptions {
  /** `webhooks.allow_private_networks`: skip the address checks (local development, tests). */
  allowPrivateNetworks: boolean;
  resolve?: HostResolver;
  /** How long the resolution may take before the URL is refused (default 2 s). */
  resolveTimeoutMs?: number;
}

/** Names that reach internal services whatever a resolver answers for them. */
const BLOCKED_HOSTNAMES = new Set(["localhost", "metadata", "metadata.google.internal", "metadata.goog"]);

/** Lower-case, without IPv6 brackets or the trailing dot of a fully qualified name. */
export function normalizeHostname(hostname: string): string {
  return hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
}

const privateHint = "only public addresses are called (webhooks.allow_private_networks allows others)";

/** Throws unless `address` (an IP address a host resolved to, or an IP literal) is public unicast. */
export function assertPublicAddress(host: string, address: string): void {
  const reason = blockedAddressReason(address);
  if (reason === undefined) return;
  // A name's address is not told: tenants would map internal names through this message.
  const what = host === address ? `${address} is` : `host "${host}" resolves to`;
  const article = reason === "unspecified" ? "an" : "a";
  const why = `${what} ${article} ${reason} address`;
  throw new UrlRejectedError("blocked_address", `${why}; ${privateHint}`, why);
}

function assertAllowedHostname(host: string): void {
  if (BLOCKED_HOSTNAMES.has(host) || host.endsWith(".localhost")) {
    const why = `host "${host}" is an internal name`;
    throw new UrlRejectedError("blocked_host", `${why}; ${privateHint}`, why);
  }
}

/**
 * Throws unless `host` (a URL's hostname, normalized) may be reached as far as can be told
 * without DNS: not an internal name (`localhost`, `*.localhost`, the metadata names), not a
 * non-public IP literal. The check of every outbound URL and of image URLs passed to providers.
 */
export function assertPublicHost(host: string): void {
  assertAllowedHostname(host);
  if (isIP(host)) assertPublicAddress(host, host);
}

/**
 * Parses an outbound URL and checks what can be checked without DNS: http(s) only, no
 * credentials, and (unless private networks are allowed) no internal names or non-public IP
 * literals. WHATWG parsing turns decimal, octal and hex IPv4 forms (`2130706433`, `0177.0.0.1`,
 * `0x7f.1`) into dotted quads, so those are checked as the address they are.
 */
export function parseOutboundUrl(raw: string, options: Pick<UrlGuardOptions, "allowPrivateNetworks">): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UrlRejectedError("invalid_url", "not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UrlRejectedError("invalid_url", `must be an http or https URL, not ${url.protocol}`);
  }
  if (url.username || url.password) {
    // They would be stored and shown with the URL; receivers should check the signature instead.
    throw new UrlRejectedError("invalid_url", "must not contain credentials (user:password@)");
  }
  if (options.allowPrivateNetworks) return url;
  assertPublicHost(normalizeHostname(url.hostname));
  return url;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new UrlRejectedError("unresolvable", message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves `host` and throws unless it has at least one address and every address is public. */
export async function resolvePublicAddresses(
  host: string,
  resolve: HostResolver,
  timeoutMs: number,
): Promise<LookupAddress[]> {
  let addresses: LookupAddress[];
  try {
    addresses = await withTimeout(
      resolve(host),
      timeoutMs,
      `host "${host}" did not resolve within ${timeoutMs} ms`,
    );
  } catch (error) {
    if (error instanceof UrlRejectedError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UrlRejectedError("unresolvable", `host "${host}" does not resolve (${code})`);
  }
  if (addresses.length === 0) {
    throw new UrlRejectedError("unresolvable", `host "${host}" has no addresses`);
  }
  // ANY bad address refuses the host: a resolver may hand out a different one on the next lookup.
  for (const { address } of addresses) assertPublicAddress(host, address);
  return addresses;
}

/**
 * Checks a user-supplied URL before it is accepted (e.g. a webhook URL at enqueue): the static
 * checks of `parseOutboundUrl`, then every address the host resolves to. This is a courtesy
 * that fails bad URLs early; what keeps requests off private networks is the connect-time check
 * of `createGuardedLookup`, since DNS may answer differently later.
 */
export async function assertOutboundUrl(raw: string, options: UrlGuardOptions): Promise<URL> {
  const url = parseOutboundUrl(raw, options);
  if (options.allowPrivateNetworks) return url;
  const host = normalizeHostname(url.hostname);
  if (isIP(host)) return url;
  await resolvePublicAddresses(host, options.resolve ?? systemResolver, options.resolveTimeoutMs ?? 2000);
  return url;
}

/**
 * A `lookup` for `net.connect` / undici's connector: resolves with `resolve`, refuses internal
 * names and any non-public address with a UrlRejectedError, and hands the socket only the
 * addresses it checked, so the connection goes exactly where the check said (no DNS-rebinding
 * window between check and connect). `net` skips `lookup` for IP literals: check those separately.
 */
export function createGuardedLookup(
  resolve: HostResolver = systemResolver,
  timeoutMs = 5000,
): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    const host = normalizeHostname(hostname);
    const lookup = async () => {
      assertAllowedHostname(host);
      const addresses = await resolvePublicAddresses(host, resolve, timeoutMs);
      const family = options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : options.family;
      const wanted = family ? addresses.filter((entry) => entry.family === family) : addresses;
      if (wanted.length === 0) {
        throw new UrlRejectedError("unresolvable", `host "${host}" has no IPv${family} address`);
      }
      return wanted;
    };
    lookup().then(
      (addresses) => {
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]?.address ?? "", addresses[0]?.family ?? 4);
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, "", 0),
    );
  };
}
