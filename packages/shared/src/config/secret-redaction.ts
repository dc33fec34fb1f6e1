import type { Config } from "./load.js";

/** Shorter values are not scrubbed: they would match ordinary words and numbers. */
const MIN_SECRET_LENGTH = 8;
const REDACTED = "[redacted]";

const redactors = new WeakMap<Config, (text: string) => string>();

/**
 * `text` (an upstream's error body, as the attempt's message and the log's `detail` carry it)
 * without any secret the config sends upstream: provider and deployment API keys, and header
 * values read from the environment. Some OpenAI-compatible servers and proxies echo the request's
 * `Authorization` header in their errors, and what a tenant reads must never hold our key.
 * Nor where the operator's providers live: the host names of the configured `base_url`s and IP
 * addresses (Node's network errors name the address they could not reach, `connect ECONNREFUSED
 * 10.0.3.7:8000`) become `[provider address]`; the provider's id already says which one it was.
 */
export function redactSecrets(config: Config, text: string): string {
  let redact = redactors.get(config);
  if (!redact) {
    redact = redactorFor(config);
    redactors.set(config, redact);
  }
  return redact(text);
}

const ADDRESS = "[provider address]";
/**
 * IPv4 with an optional port (an address ending a sentence too); IPv6 in brackets (two colons at
 * least, so `messages[0]` is left alone), in full (eight groups), or compressed (`::1`,
 * `fe80::7%eth0`), each with an optional port.
 */
const IP_ADDRESS = new RegExp(
  [
    String.raw`(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\w|\.\d)`,
    String.raw`\[[0-9a-fA-F.]*:[0-9a-fA-F.]*:[\w:.%-]*\](?::\d{1,5})?`,
    String.raw`(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?:%[\w.-]+)?(?::\d{1,5})?(?![\w:])`,
    String.raw`(?<![\w:])(?:[0-9a-fA-F]{1,4})?(?::[0-9a-fA-F]{1,4})*::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?:\.\d{1,3}){0,3}(?:%[\w.-]+)?(?::\d{1,5})?(?![\w:])`,
  ].join("|"),
  "g",
);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function addHost(hosts: Set<string>, baseUrl: string | undefined): void {
  if (!baseUrl) return;
  try {
    const host = new URL(baseUrl).hostname.replace(/^\[|\]$/g, "");
    if (host) hosts.add(host);
  } catch {
    // The config's schema checked it; nothing to scrub if it did not parse here.
  }
}

function redactorFor(config: Config): (text: string) => string {
  const secrets = new Set<string>(config.providerKeys.values());
  const hosts = new Set<string>();
  for (const [id, provider] of Object.entries(config.file.providers)) {
    const resolved = config.providerHeaders.get(id);
    for (const [name, value] of Object.entries(provider.headers ?? {})) {
      const secret = typeof value === "string" ? undefined : resolved?.[name];
      if (secret) secrets.add(secret);
    }
    addHost(hosts, (provider as { base_url?: string }).base_url);
  }
  // A pool's deployment may have an endpoint of its own.
  for (const model of Object.values(config.file.models)) {
    for (const deployment of model.deployments ?? []) addHost(hosts, deployment.base_url);
  }
  // Longest first, so a key that holds another is scrubbed whole.
  const list = [...secrets]
    .filter((secret) => secret.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  const hostPattern = hosts.size
    ? new RegExp(
        `(?<![\\w.-])(?:${[...hosts]
          .sort((a, b) => b.length - a.length)
          .map(escapeRegExp)
          .join("|")})(?::\\d{1,5})?(?![\\w-])`,
        "gi",
      )
    : undefined;
  return (text) => {
    let out = text;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    if (hostPattern) out = out.replace(hostPattern, ADDRESS);
    return out.replace(IP_ADDRESS, ADDRESS);
  };
}
