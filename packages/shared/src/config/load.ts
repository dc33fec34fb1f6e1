import { hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { extname, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import { ZodError, type z } from "zod";
import { ConfigError } from "../errors/config-error.js";
import { deploymentKey } from "../redis/keys.js";
import { parseWebhookSecrets } from "../webhooks/secrets.js";
import { demoConfig } from "./demo-config.js";
import { duplicateKeyMessage, jsonDuplicateKey, yamlDuplicateKey } from "./duplicate-keys.js";
import { type ConfigFile, configSchema, type ProviderConfig, type TenantConfig } from "./schema.js";
import { type Settings, settingsSchema } from "./settings.js";

/** A tenant with its secrets resolved from the environment. */
export interface ResolvedTenant {
  id: string;
  /** Hex SHA-256 digests of the tenant's API keys. */
  keyHashes: ReadonlySet<string>;
  webhookSecret: string | undefined;
  config: TenantConfig;
}

/** The loaded, validated and frozen configuration every process works from. */
export interface Config {
  readonly file: ConfigFile;
  /** Where the config came from: a path, or "built-in demo config". */
  readonly source: string;
  readonly settings: Settings;
  /** No tenants configured: everything belongs to tenant "default" and needs no key. */
  readonly openMode: boolean;
  readonly tenants: ReadonlyMap<string, ResolvedTenant>;
  /**
   * API keys of providers whose `api_key_env` is set in the environment, and of pooled models'
   * deployments with an `api_key_env` of their own (keyed `<model>/<deployment>`).
   */
  readonly providerKeys: ReadonlyMap<string, string>;
  /** Each provider's extra request headers (`headers`), `{ env }` values read from the environment. */
  readonly providerHeaders: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** The value of `alerts.webhook_secret_env` (one or more `whsec_` secrets), when alerts are signed. */
  readonly alertsWebhookSecret?: string;
  /** Problems that do not stop the process but deserve a loud warning. */
  readonly warnings: readonly string[];
}

export type Environment = Record<string, string | undefined>;

/** Formats a zod error as one line: `path: message; path: message`. */
export function formatZodError(
  error: ZodError,
  root = "",
  /** How a path is written: dotted for config keys; a request's fields as OpenAI writes them (fieldPath). */
  pathOf: (segments: PropertyKey[]) => string = (segments) => segments.map(String).join("."),
): string {
  return error.issues
    .slice(0, 8)
    .flatMap((issue) => {
      const base: PropertyKey[] = root ? [root, ...issue.path] : [...issue.path];
      // An unknown key is named by its own path (`models.x.colour`), which is what people grep for.
      if (issue.code === "unrecognized_keys") {
        return issue.keys.map((key) => `${pathOf([...base, key])}: unknown key (not allowed here)`);
      }
      const path = pathOf(base);
      // A record's bad key says why (its own check's message, e.g. the id pattern), not only that
      // the key is invalid.
      const message =
        issue.code === "invalid_key" && issue.issues[0]?.message
          ? `invalid id (${issue.issues[0].message})`
          : issue.message;
      return [path ? `${path}: ${message}` : message];
    })
    .join("; ");
}

/** Node's one-shot digest (about twice as fast as a Hash object for a short input). */
export function sha256Hex(value: string): string {
  return hash("sha256", value, "hex");
}

/** Reads and validates the environment variables of the contract. */
export function loadSettings(env: Environment): Settings {
  const result = settingsSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(`Invalid environment: ${formatZodError(result.error)}`);
  }
  return result.data;
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `CASCADE_CONFIG=${path}: cannot read the file (${code ?? String(error)}); point CASCADE_CONFIG at a YAML or JSON config, or unset it for the built-in demo config`,
    );
  }
  // Empty (or blank): parseConfigFile says what the file needs, whatever its format.
  if (text.trim() === "") return null;
  try {
    // A BOM (Windows editors write one) is no character of the config.
    const source = text.replace(/^\uFEFF/, "");
    return extname(path).toLowerCase() === ".json" ? readJson(source) : readYaml(source);
  } catch (error) {
    // YAML's messages end their first line with a colon before a code excerpt.
    const first = (error as Error).message.split("\n")[0]?.replace(/:\s*$/, "");
    throw new ConfigError(`CASCADE_CONFIG=${path}: not valid ${extname(path) || "YAML"}: ${first}`);
  }
}

/**
 * A JSON config. JSON.parse keeps the last of two equal keys, so a model or tenant written twice
 * would lose its first entry without a word (its price, `admin: true`); YAML refuses the same file,
 * and so does this, naming the key and where it is.
 */
function readJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  const duplicate = jsonDuplicateKey(text);
  if (duplicate) throw new Error(duplicateKeyMessage(duplicate));
  return value;
}

/**
 * One YAML document, as a plain value. Whatever the parser would only warn about (an unknown tag,
 * which it would drop, leaving the value it was on) is an error, as is a second document.
 */
function readYaml(text: string): unknown {
  // Merge keys (`<<: *defaults`) are how YAML files share settings between entries. Keys written
  // twice are found in one pass below: the parser's own check is quadratic in a map's size.
  const documents = parseAllDocuments(text, { merge: true, uniqueKeys: false });
  if (!Array.isArray(documents)) return null;
  const [document, second] = documents;
  if (!document) return null;
  if (second) throw new Error("the file holds more than one YAML document (---); keep one");
  const problem = document.errors[0] ?? document.warnings[0];
  if (problem) throw problem;
  const duplicate = yamlDuplicateKey(document, text);
  if (duplicate) throw new Error(duplicateKeyMessage(duplicate));
  return document.toJS();
}

/** A copy of an id → value record without a prototype, so `records["constructor"]` is undefined. */
function withoutPrototype<T>(record: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, record);
}

/** Validates a raw config object (already parsed from YAML or JSON). */
export function parseConfigFile(raw: unknown, source: string): ConfigFile {
  // An empty file (or one holding only comments) parses to nothing: say what it needs.
  if (raw === null || raw === undefined) {
    throw new ConfigError(
      `Invalid config (${source}): the file is empty; it needs at least providers: and models: (see docs/configuration.md), or unset CASCADE_CONFIG for the built-in demo config`,
    );
  }
  try {
    const file = configSchema.parse(raw);
    // Ids come from users and requests: "constructor" or "__proto__" must look unknown, not like
    // a built-in property of every object.
    return {
      ...file,
      providers: withoutPrototype(file.providers),
      models: withoutPrototype(file.models),
      routes: withoutPrototype(file.routes),
      fallbacks: withoutPrototype(file.fallbacks),
      ...(file.tenants ? { tenants: withoutPrototype(file.tenants) } : {}),
    };
  } catch (error) {
    if (error instanceof ZodError) {
      throw new ConfigError(`Invalid config (${source}): ${formatZodError(error)}`);
    }
    throw error;
  }
}

function resolveTenants(file: ConfigFile, env: Environment): Map<string, ResolvedTenant> {
  const tenants = new Map<string, ResolvedTenant>();
  // A key is one tenant's: given to two, one of them would act as the other (an admin's key
  // taken for another tenant's, or the reverse), whichever the lookup met last.
  const owners = new Map<string, string>();
  for (const [id, tenant] of Object.entries(file.tenants ?? {})) {
    const hashes = new Set((tenant.api_key_sha256 ?? []).map((hash) => hash.toLowerCase()));
    if (tenant.api_keys_env) {
      for (const key of (env[tenant.api_keys_env] ?? "").split(",")) {
        if (key.trim()) hashes.add(sha256Hex(key.trim()));
      }
    }
    for (const hash of hashes) {
      const owner = owners.get(hash);
      if (owner !== undefined) {
        throw new ConfigError(
          `tenants.${id}: an API key of this tenant is also one of tenant ${owner}'s; give each tenant keys of its own`,
        );
      }
      owners.set(hash, id);
    }
    const webhookSecret = tenant.webhook_secret_env ? env[tenant.webhook_secret_env] : undefined;
    tenants.set(id, { id, keyHashes: hashes, webhookSecret, config: tenant });
  }
  return tenants;
}

function resolveProviderKeys(file: ConfigFile, env: Environment): Map<string, string> {
  const keys = new Map<string, string>();
  for (const [id, provider] of Object.entries(file.providers)) {
    const value = provider.api_key_env ? env[provider.api_key_env] : undefined;
    if (value) keys.set(id, value);
  }
  // A deployment with a key of its own: under its deployment key, `<model>/<deployment>`.
  for (const [modelId, model] of Object.entries(file.models)) {
    for (const deployment of model.deployments ?? []) {
      const value = deployment.api_key_env ? env[deployment.api_key_env] : undefined;
      if (value) keys.set(deploymentKey(modelId, deployment.id), value);
    }
  }
  return keys;
}

/**
 * Each provider's `headers` with `{ env: NAME }` values read now. An unset variable is a startup
 * error: a provider called without the header it was configured with (an OpenRouter app title, a
 * gateway's routing key) fails in ways far from the cause.
 */
function resolveProviderHeaders(
  providers: Record<string, ProviderConfig>,
  env: Environment,
): Map<string, Record<string, string>> {
  const resolved = new Map<string, Record<string, string>>();
  for (const [id, provider] of Object.entries(providers)) {
    if (!provider.headers) continue;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(provider.headers)) {
      if (typeof value === "string") {
        headers[name] = value;
        continue;
      }
      const fromEnv = env[value.env];
      // Set but empty is the same mistake as unset (`export X_TITLE=` in a unit file, a secret
      // mounted empty): the header would go out blank, as if configured with nothing.
      if (fromEnv === undefined || fromEnv.trim() === "") {
        const state = fromEnv === undefined ? "is not set" : "is set but empty";
        throw new ConfigError(
          `providers.${id}.headers.${name}: environment variable ${value.env} ${state}; export it, or give the header a literal value`,
        );
      }
      if (/[\r\n\0\u0100-\uffff]/.test(fromEnv)) {
        throw new ConfigError(
          `providers.${id}.headers.${name}: environment variable ${value.env} holds CR, LF, NUL or a character beyond Latin-1, which a header value cannot`,
        );
      }
      headers[name] = fromEnv;
    }
    resolved.set(id, headers);
  }
  return resolved;
}

/**
 * The secret of `alerts.webhook_secret_env`, read now: an unset variable or one that does not hold
 * `whsec_` secrets (Standard Webhooks; several while rotating) stops the process at startup.
 */
function resolveAlertsSecret(file: ConfigFile, env: Environment): string | undefined {
  const name = file.alerts?.webhook_secret_env;
  if (!name) return undefined;
  const value = env[name]?.trim();
  if (!value) {
    throw new ConfigError(
      `alerts.webhook_secret_env: the environment variable ${name} is not set; set it to a whsec_ secret (Standard Webhooks) or remove webhook_secret_env and webhook_urls`,
    );
  }
  // Read as the worker that signs with it reads it (and tenants' secrets), in every process.
  try {
    parseWebhookSecrets(value);
  } catch (error) {
    throw new ConfigError(
      `alerts.webhook_secret_env: ${name} ${(error as Error).message}; use whsec_<base64>, several separated by spaces or commas while rotating`,
    );
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}

/**
 * Loads the config once per process: `CASCADE_CONFIG` (YAML or JSON) or the built-in demo config,
 * plus the environment settings and the secrets named by `*_env` fields. Throws ConfigError
 * with a one-line message naming the setting and the fix.
 */
export function loadConfig(env: Environment, options: { raw?: unknown } = {}): Config {
  const settings = loadSettings(env);
  // Set but empty (`CASCADE_CONFIG=$CFG` with CFG unset) is a mistake, not a request for the demo.
  if (env.CASCADE_CONFIG !== undefined && env.CASCADE_CONFIG.trim() === "" && options.raw === undefined) {
    throw new ConfigError(
      "CASCADE_CONFIG is set but empty: give the path of a YAML or JSON config, or unset it for the built-in demo config",
    );
  }
  const path = env.CASCADE_CONFIG ? resolve(env.CASCADE_CONFIG) : undefined;
  const source = options.raw !== undefined ? "inline config" : (path ?? "built-in demo config");
  const raw = options.raw ?? (path ? readConfigFile(path) : structuredClone(demoConfig));
  const file = parseConfigFile(raw, source);
  const tenants = resolveTenants(file, env);
  const alertsWebhookSecret = resolveAlertsSecret(file, env);
  const warnings: string[] = [];
  const openMode = tenants.size === 0;
  if (openMode) {
    warnings.push(
      "OPEN MODE: no tenants are configured, so the API accepts requests without an API key; add `tenants:` to the config before exposing it",
    );
  }
  for (const tenant of tenants.values()) {
    if (tenant.keyHashes.size === 0) {
      warnings.push(
        `tenant "${tenant.id}" has no API keys (${tenant.config.api_keys_env ?? "api_key_sha256"} is empty), so nobody can use it`,
      );
    }
  }
  return deepFreeze({
    file,
    source,
    settings,
    openMode,
    tenants,
    providerKeys: resolveProviderKeys(file, env),
    providerHeaders: resolveProviderHeaders(file.providers, env),
    ...(alertsWebhookSecret ? { alertsWebhookSecret } : {}),
    warnings,
  }) as Config;
}

export type { z };
