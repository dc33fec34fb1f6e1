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
 */
export function redactSecrets(config: Config, text: string): string {
  let redact = redactors.get(config);
  if (!redact) {
    redact = redactorFor(config);
    redactors.set(config, redact);
  }
  return redact(text);
}

function redactorFor(config: Config): (text: string) => string {
  const secrets = new Set<string>(config.providerKeys.values());
  for (const [id, provider] of Object.entries(config.file.providers)) {
    const resolved = config.providerHeaders.get(id);
    for (const [name, value] of Object.entries(provider.headers ?? {})) {
      const secret = typeof value === "string" ? undefined : resolved?.[name];
      if (secret) secrets.add(secret);
    }
  }
  // Longest first, so a key that holds another is scrubbed whole.
  const list = [...secrets]
    .filter((secret) => secret.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  if (list.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  };
}
