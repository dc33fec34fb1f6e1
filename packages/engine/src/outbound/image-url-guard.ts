import { isIP } from "node:net";
import { type ChatMessage, fieldPath } from "@cascade/shared";
import {
  assertPublicAddress,
  assertPublicHost,
  type HostResolver,
  LookupsBusyError,
  normalizeHostname,
  UrlRejectedError,
  untrustedResolver,
} from "./url-guard.js";

/**
 * Why an image URL is refused is followed by this: the caller learns what the rule protects and
 * the operator which setting turns it off.
 */
const IMAGE_URL_HINT =
  "image URLs are passed to providers that fetch them from their own network, so only public hosts are allowed (webhooks.allow_private_networks: true allows others, for local development)";

/** An image URL Cascade will not pass on: the field (`param`) and the answer's message. */
export interface ImageUrlRefusal {
  /** The field as the door names it, e.g. `request.messages[1].content[0].image_url.url`. */
  param: string;
  /** `<param>: <why>; <what the rule is and how to allow it>`. */
  message: string;
  /**
   * True when the host could not be checked (its lookup did not answer in time, failed without an
   * answer, or found no room), not found private: another provider, or the request sent again
   * later, may do.
   */
  unchecked?: boolean;
}

/**
 * Host names (not IP literals) a request's image URLs may name while the guard is on: each one is
 * looked up before the call (untrustedResolver: bounded per process), so a request cannot queue
 * thousands of lookups.
 */
export const MAX_IMAGE_HOST_NAMES = 8;

interface ImageUrl {
  url: string;
  path: PropertyKey[];
}

/** Every http(s) image URL of the messages (data: URLs are bytes, never fetched), with its path. */
function remoteImageUrls(messages: readonly ChatMessage[]): ImageUrl[] {
  const found: ImageUrl[] = [];
  messages.forEach((message, index) => {
    if (message.role !== "user" || !Array.isArray(message.content)) return;
    message.content.forEach((part, partIndex) => {
      if (part.type !== "image_url" || !/^https?:/i.test(part.image_url.url)) return;
      found.push({
        url: part.image_url.url,
        path: ["messages", index, "content", partIndex, "image_url", "url"],
      });
    });
  });
  return found;
}

/** Whether the messages carry an image URL a provider would fetch (a cheap scan, no parsing). */
export function hasRemoteImageUrl(messages: readonly ChatMessage[]): boolean {
  for (const message of messages) {
    if (message.role !== "user" || !Array.isArray(message.content)) continue;
    for (const part of message.content) {
      if (part.type === "image_url" && /^https?:/i.test(part.image_url.url)) return true;
    }
  }
  return false;
}

/**
 * The host part as a parser other than WHATWG's takes it (RFC 3986: up to the first `/`, `?` or
 * `#`). Providers fetch with their own parsers (Python's, Go's): where that part holds `@`, `\`,
 * spaces or control characters, they may read another host than the one checked here
 * (`http://example.com\@127.0.0.1/` is example.com to WHATWG, 127.0.0.1 to Python's urllib).
 */
function ambiguousAuthority(raw: string): boolean {
  const authority = /^https?:\/\/([^/?#]*)/i.exec(raw)?.[1] ?? "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for.
  return /[@\\\s\u0000-\u001f\u007f]/.test(authority);
}

/** What is wrong with the URL as far as can be told without DNS, or undefined; and its host. */
function staticCheck(raw: string): { why: string } | { host: string } {
  if (ambiguousAuthority(raw)) {
    return {
      why: "the URL's host part holds credentials (user@), a backslash, a space or a control character, which URL parsers read differently",
    };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { why: "not a valid URL" };
  }
  const host = normalizeHostname(url.hostname);
  try {
    assertPublicHost(host);
  } catch (error) {
    if (error instanceof UrlRejectedError) return { why: error.why };
    throw error;
  }
  return { host };
}

function refusal(prefix: readonly PropertyKey[], image: ImageUrl, why: string): ImageUrlRefusal {
  const param = fieldPath([...prefix, ...image.path]);
  return { param, message: `${param}: ${why}; ${IMAGE_URL_HINT}` };
}

/**
 * The first image URL of the messages that points at a private, loopback, link-local,
 * unspecified or metadata address literally (any spelling WHATWG URL parsing normalizes: decimal,
 * octal and hex IPv4, IPv4-mapped IPv6), or at an internal name (`localhost`, `*.localhost`, the
 * metadata names), or whose host part parsers read differently; undefined when there is none, or
 * when private networks are allowed. Checked where requests come in (POST /v1/jobs, the gateway,
 * batch lines): no DNS, so it costs a request without image URLs one scan of its messages.
 * `prefix`: where the messages sit in the door's body (`["request"]` for a job).
 */
export function findRefusedImageUrl(
  messages: readonly ChatMessage[],
  options: { allowPrivateNetworks: boolean },
  prefix: readonly PropertyKey[] = [],
): ImageUrlRefusal | undefined {
  if (options.allowPrivateNetworks || !hasRemoteImageUrl(messages)) return undefined;
  const names = new Set<string>();
  for (const image of remoteImageUrls(messages)) {
    const checked = staticCheck(image.url);
    if ("why" in checked) return refusal(prefix, image, checked.why);
    const over = overNameLimit(names, checked.host);
    if (over) return refusal(prefix, image, over);
  }
  return undefined;
}

/** Counts `host` among the request's names; why it is refused once past MAX_IMAGE_HOST_NAMES. */
function overNameLimit(names: Set<string>, host: string): string | undefined {
  if (isIP(host) || names.has(host)) return undefined;
  names.add(host);
  if (names.size <= MAX_IMAGE_HOST_NAMES) return undefined;
  return `the image URLs name more than ${MAX_IMAGE_HOST_NAMES} different hosts (each is looked up before the call)`;
}

/** A lookup that gave no verdict: why, for the refusal's message. */
interface Unchecked {
  unchecked: string;
}

/**
 * Why a host is refused, from its lookup: undefined when nothing is against it (public answers,
 * or the resolver said the name does not exist: the provider resolves it from its own network);
 * an `Unchecked` when no answer came (the process's lookups were full, a resolver failure): only
 * a definite answer passes.
 */
async function hostVerdict(host: string, resolve: HostResolver): Promise<string | undefined | Unchecked> {
  let addresses: Awaited<ReturnType<HostResolver>>;
  try {
    addresses = await resolve(host);
  } catch (error) {
    if (error instanceof LookupsBusyError)
      return { unchecked: "too many lookups of names from requests are waiting" };
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOTFOUND" || code === "ENODATA") return undefined;
    const why = code ?? (error instanceof Error ? error.message : String(error));
    return { unchecked: `its lookup failed (${why})` };
  }
  try {
    for (const { address } of addresses) assertPublicAddress(host, address);
    return undefined;
  } catch (error) {
    if (error instanceof UrlRejectedError) return error.why;
    throw error;
  }
}

/**
 * As findRefusedImageUrl, then every name among the image URLs' hosts looked up (through the
 * process's bounded lookups: one at a time, each name once, verdicts kept a minute) and refused
 * when any address it has is not public. Run right before a call to a provider that fetches image
 * URLs itself. A name that does not resolve here passes: the provider resolves it from its own
 * network, and Cascade cannot judge it (a worker that reaches its providers through a proxy may
 * resolve nothing at all). A name whose lookup has not answered within `timeoutMs` is refused as
 * `unchecked` (never passed on unchecked: lookups held up by slow names would otherwise let a
 * private one through). This is a check of what the names say now: a name whose answer changes by
 * the time the provider looks it up (DNS rebinding), or a URL that redirects, is beyond what
 * Cascade can see (ADR 0007).
 */
export async function findPrivateImageHost(
  messages: readonly ChatMessage[],
  options: { resolve?: HostResolver; timeoutMs?: number } = {},
): Promise<ImageUrlRefusal | undefined> {
  // Tests play DNS with their own resolver (a BoundedResolver's lookup, to be bounded likewise).
  const resolve = options.resolve ?? untrustedResolver;
  const timeoutMs = options.timeoutMs ?? 2000;
  const images = remoteImageUrls(messages);
  const hosts: string[] = [];
  const names = new Set<string>();
  for (const image of images) {
    const checked = staticCheck(image.url);
    if ("why" in checked) return refusal([], image, checked.why);
    const over = overNameLimit(names, checked.host);
    if (over) return refusal([], image, over);
    hosts.push(checked.host);
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((done) => {
    timer = setTimeout(() => done("late"), timeoutMs);
  });
  // Every name's lookup asked for at once (they queue for the process's slot), then read in order.
  const byHost = new Map<string, ReturnType<typeof hostVerdict>>();
  const verdicts = hosts.map((host) => {
    if (isIP(host)) return undefined;
    let verdict = byHost.get(host);
    if (!verdict) {
      verdict = hostVerdict(host, resolve);
      byHost.set(host, verdict);
    }
    return verdict;
  });
  try {
    for (const [index, image] of images.entries()) {
      const host = hosts[index] ?? "";
      const pending = verdicts[index];
      if (pending === undefined) continue;
      const verdict = await Promise.race([pending, late]);
      // Not checked in time (the process's lookups are busy, or this one is slow): not passed on
      // unchecked, which would let a name be slipped past while lookups are held up.
      if (verdict === "late" || typeof verdict === "object") {
        const why = verdict === "late" ? ` within ${timeoutMs} ms` : `: ${verdict.unchecked}`;
        return { ...refusal([], image, `host "${host}" could not be checked${why}`), unchecked: true };
      }
      if (verdict !== undefined) return refusal([], image, verdict);
    }
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
