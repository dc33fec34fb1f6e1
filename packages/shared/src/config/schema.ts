import { z } from "zod";
import { alertsSchema, checkAlertRules } from "./alerts-schema.js";

export { type AlertRuleConfig, type AlertsConfig, alertRuleSchema } from "./alerts-schema.js";

/** Reasons the contract names; also the `fallback_reason` log field. */
export const REASONS = [
  "rate_limited",
  "server_error",
  "timeout",
  "network_error",
  "circuit_open",
  "capability_missing",
  "context_length",
  "content_filter",
  "over_budget",
  "price_ceiling",
  "auth_error",
  "bad_request",
  "invalid_response",
] as const;
export type Reason = (typeof REASONS)[number];

/** `prefill`: the model continues an assistant message placed last (the gateway's stream continuation). */
export const CAPABILITIES = ["vision", "tools", "json", "prefill"] as const;
export type Capability = (typeof CAPABILITIES)[number];

const positiveInt = z.number().int().positive();
/** The longest a Node timer waits (2^31 − 1 ms); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;
/** A time in ms that a timer waits for: past MAX_TIMER_MS every call would time out at once. */
const durationMs = positiveInt.max(MAX_TIMER_MS, {
  error: `must be at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest a timer waits`,
});
const nonNegative = z.number().nonnegative();
const rate = z.number().min(0).max(1);

const limitsSchema = z
  .strictObject({
    rpm: positiveInt.optional(),
    tpm: positiveInt.optional(),
    burst: positiveInt.optional(),
    /** The tpm bucket's capacity in tokens (a Cascade addition; default a second's worth). */
    tpm_burst: positiveInt.optional(),
  })
  .refine((limits) => limits.burst === undefined || limits.rpm !== undefined, {
    message: "burst only applies with rpm; set rpm too",
    path: ["burst"],
  })
  .refine((limits) => limits.tpm_burst === undefined || limits.tpm !== undefined, {
    message: "tpm_burst only applies with tpm; set tpm too",
    path: ["tpm_burst"],
  });

const breakerSchema = z.strictObject({
  failure_threshold: z.number().gt(0).max(1).optional(),
  min_requests: positiveInt.optional(),
  window_ms: durationMs.optional(),
  open_ms: durationMs.optional(),
});

/** Behaviour of a `simulated` provider (and per-model overrides of it). */
export const simulateSchema = z.strictObject({
  latency_ms: z
    .union([nonNegative.max(MAX_TIMER_MS), z.tuple([nonNegative, nonNegative.max(MAX_TIMER_MS)])])
    .refine(
      (value) => typeof value === "number" || value[0] <= value[1],
      "latency_ms [min, max] needs min <= max",
    )
    .optional(),
  error_rate: rate.optional(),
  rate_limit_rate: rate.optional(),
  hang_rate: rate.optional(),
  retry_after_s: nonNegative.optional(),
  output_tokens: positiveInt.optional(),
  /** Share of streamed calls that break off midway (a network_error after about half the deltas). */
  stream_cut_rate: rate.optional(),
});
export type SimulateSettings = z.infer<typeof simulateSchema>;

/**
 * Secrets whose own shape is a valid variable name (`sk_…` keys, Standard Webhooks' `whsec_…`,
 * Google's `AIza…`, Groq's `gsk_…`; OpenAI's `sk-…` already fails the name's pattern): written
 * where the variable's name goes, they would be quoted back in "the environment variable … is not
 * set".
 */
const SECRET_SHAPED = /^(sk_|whsec_|AIza|gsk_)/;
const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be the NAME of an environment variable")
  // Only a valid name is looked at again (an invalid one has its own message already).
  .refine((value) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(value) || !SECRET_SHAPED.test(value), {
    error:
      "looks like a secret itself: give the NAME of the environment variable that holds it (e.g. OPENAI_API_KEY), and put the secret in that variable",
  });

/** An HTTP header name (RFC 9110 token). */
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the provider client sets itself: overriding them would break the call or leak the key. */
const RESERVED_HEADERS = new Set([
  "authorization",
  "x-api-key",
  "x-goog-api-key",
  "content-type",
  "content-length",
  "host",
  // Connection-level headers the HTTP client manages (undici refuses them on every call).
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "expect",
  "te",
  "trailer",
]);

/** Extra request headers: a literal value, or `{ env: NAME }` read from the environment at startup. */
const headersSchema = z
  .record(
    z.string(),
    z.union(
      [
        // HTTP header values are bytes: Latin-1 at most, and never a line break.
        z
          .string()
          .regex(
            /^[^\r\n\0\u0100-\uffff]*$/,
            "a header value holds Latin-1 characters only, never CR, LF or NUL",
          ),
        z.strictObject({ env: envName }),
      ],
      {
        // Neither form ("Invalid input" said nothing): what an object got wrong, else what it may be.
        error: (issue) => {
          if (issue.code !== "invalid_union") return undefined;
          const issues = typeof issue.input === "object" ? (issue.errors[1] ?? []) : [];
          // A misspelt `env` is the likeliest mistake: name the unknown key first.
          const inner = issues.find((each) => each.code === "unrecognized_keys") ?? issues[0];
          const where = inner?.path.length ? `${inner.path.join(".")}: ` : "";
          return inner
            ? `${where}${inner.message} (a header is a string or { env: NAME })`
            : "must be a string or { env: NAME }";
        },
      },
    ),
  )
  .superRefine((headers, context) => {
    const names = Object.keys(headers);
    if (names.length > 32) context.addIssue({ code: "custom", message: "at most 32 headers" });
    for (const name of names) {
      if (!headerName.test(name)) {
        context.addIssue({ code: "custom", path: [name], message: "must be an HTTP header name" });
      } else if (RESERVED_HEADERS.has(name.toLowerCase())) {
        context.addIssue({
          code: "custom",
          path: [name],
          message: "is set by Cascade itself or its HTTP client (a key goes in api_key_env)",
        });
      }
    }
  });

/**
 * A provider's or deployment's endpoint. Cascade appends the standard path to it
 * (`/chat/completions`, `/messages`, `/models/{model}:generateContent`), which a query string or
 * fragment would swallow: such a URL would call the wrong path, so it is refused here.
 */
const baseUrlSchema = z.url({ protocol: /^https?$/ }).refine((url) => !/[?#]/.test(url), {
  message:
    "must not hold a query string or fragment (Cascade appends the endpoint's path to it); give the API's base path only, e.g. https://api.example.com/v1",
});

const providerSchema = z
  .strictObject({
    type: z.enum(["openai", "anthropic", "gemini", "simulated"]),
    base_url: baseUrlSchema.optional(),
    api_key_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be the NAME of an environment variable, never the key itself")
      .optional(),
    limits: limitsSchema.optional(),
    breaker: breakerSchema.optional(),
    simulate: simulateSchema.optional(),
    headers: headersSchema.optional(),
    /**
     * type openai: whether OpenAI's own request fields (reasoning_effort, service_tier, store,
     * logit_bias, prompt_cache_key, safety_identifier, verbosity, prediction) are sent. Default:
     * `forward` for OpenAI's and Azure OpenAI's hosts, `drop` for other OpenAI-compatible endpoints,
     * which may refuse fields they do not know.
     */
    openai_fields: z.enum(["forward", "drop"]).optional(),
    /**
     * type openai: whether a streamed call asks for `stream_options: {include_usage: true}` (the
     * usage chunk). Default: `send`, except `drop` for Mistral's hosts (`*.mistral.ai`), which answer
     * the field with a 422 and send usage in the last chunk unasked.
     */
    stream_options: z.enum(["send", "drop"]).optional(),
    /**
     * Upstream connections per process (each deployment with its own key or endpoint has as many
     * again). Default: WORKER_CONCURRENCY on workers, 512 on the API.
     */
    connections: z
      .number()
      .int("must be a whole number of connections")
      .min(1, "must be at least 1")
      .max(65_536, "must be at most 65536")
      .optional(),
  })
  // Settings of OpenAI's wire format only: on another type they would do nothing, silently.
  .superRefine((provider, context) => {
    if (provider.type === "openai") return;
    for (const key of ["openai_fields", "stream_options"] as const) {
      if (provider[key] !== undefined) {
        context.addIssue({
          code: "custom",
          path: [key],
          message: `only applies to type: openai (this provider is type: ${provider.type}); remove it`,
        });
      }
    }
  });

/** How a hop on a pooled model picks among its deployments (contract, "Pools and fairness"). */
export const POOL_STRATEGIES = ["weighted", "least_busy", "lowest_latency", "most_headroom"] as const;
export type PoolStrategy = (typeof POOL_STRATEGIES)[number];

/** One deployment of a pooled model: the same model on another key, organisation or endpoint. */
const deploymentSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "ids use letters, digits and . _ : -"),
  provider: z.string().min(1),
  /** The upstream model name on this deployment (default: the model's `name`, else its id). */
  name: z.string().min(1).optional(),
  /** This deployment's key, instead of its provider's. */
  api_key_env: envName.optional(),
  /** This deployment's endpoint, instead of its provider's. */
  base_url: baseUrlSchema.optional(),
  weight: z.number().positive().max(1000).optional(),
  limits: limitsSchema.optional(),
  breaker: breakerSchema.optional(),
});
export type DeploymentConfig = z.infer<typeof deploymentSchema>;

const modelSchema = z.strictObject({
  /** The model's provider; a pooled model names `deployments` instead. */
  provider: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
  strategy: z.enum(POOL_STRATEGIES).optional(),
  deployments: z.array(deploymentSchema).min(1, "a pool needs at least one deployment").max(64).optional(),
  price: z
    .strictObject({
      input_per_mtok: nonNegative,
      output_per_mtok: nonNegative,
      /** Prompt tokens read from the provider's cache (OpenAI cached, Anthropic cache reads, Gemini cached content); default: input_per_mtok. */
      cached_input_per_mtok: nonNegative.optional(),
      /** Prompt tokens written to the provider's cache (Anthropic cache creation); default: input_per_mtok. */
      cache_write_per_mtok: nonNegative.optional(),
    })
    .optional(),
  context_window: positiveInt.optional(),
  capabilities: z.array(z.enum(CAPABILITIES)).optional(),
  limits: limitsSchema.optional(),
  breaker: breakerSchema.optional(),
  simulate: simulateSchema.optional(),
});

/** What `max_retries` retries by default: not `timeout` (a silent provider stays silent). */
export const DEFAULT_RETRY_ON = [
  "server_error",
  "network_error",
  "invalid_response",
  "rate_limited",
] as const;
/** Reasons a hop can be retried for: the call failed in a way another try may not. */
export const RETRYABLE_REASONS = [...DEFAULT_RETRY_ON, "timeout"] as const;

export const hopSchema = z.strictObject({
  model: z.string().min(1),
  timeout_ms: durationMs.optional(),
  /** Response headers and the first token (the first byte of a non-streamed answer) within this. */
  first_token_timeout_ms: durationMs.optional(),
  /** A started stream may fall silent at most this long. */
  idle_timeout_ms: durationMs.optional(),
  max_retries: z.number().int().min(0).max(10).optional(),
  retry_on: z.array(z.enum(RETRYABLE_REASONS)).optional(),
  max_cost_usd: nonNegative.optional(),
});

const routeSchema = z.strictObject({
  deadline_ms: durationMs.optional(),
  /** Gateway: how long a request may wait for limits (header x-cascade-deadline-ms overrides). */
  sync_deadline_ms: durationMs.optional(),
  /** Gateway: a stream that fails after the caller has tokens continues on a prefill hop, or ends in an error. */
  on_stream_failure: z.enum(["continue", "error"]).optional(),
  /** Gateway: the first tokens are held back this long, so that an early failure restarts unseen. */
  stream_hold_ms: z.number().int().min(0).max(60_000).optional(),
  on_content_filter: z.enum(["fallback", "fail"]).optional(),
  on_bad_request: z.enum(["fail", "fallback"]).optional(),
  on_missing_vision: z.enum(["skip", "strip"]).optional(),
  chain: z.array(hopSchema).min(1, "a route needs at least one hop"),
});

const budgetSchema = z.strictObject({
  daily_usd: nonNegative.optional(),
  monthly_usd: nonNegative.optional(),
});

const tenantSchema = z
  .strictObject({
    api_keys_env: envName.optional(),
    api_key_sha256: z.array(z.string().regex(/^[0-9a-f]{64}$/i, "must be a hex SHA-256 digest")).optional(),
    webhook_secret_env: envName.optional(),
    budget: budgetSchema.optional(),
    user_budget: budgetSchema.optional(),
    /** Addition: rpm/tpm buckets for all of this tenant's calls, across providers. */
    limits: limitsSchema.optional(),
    /** Addition: may override circuit breakers (POST /v1/providers/:id/breaker). */
    admin: z.boolean().optional(),
    /** Share of the workers when tenants compete (weighted round robin within a priority), default 1. */
    weight: z.number().int().min(1).max(100).optional(),
    /** Jobs of this tenant running at once, across all workers. */
    max_concurrency: positiveInt.optional(),
    /** Addition: MiB of uploaded files (Files API) this tenant may hold at once, default 1024. */
    max_file_storage_mb: z.number().positive().optional(),
    /**
     * Addition: gateway calls, job event streams and waiting GETs this tenant holds open at once on
     * one API process, default 1000 (docs/decisions/0035-open-requests-per-tenant.md).
     */
    max_open_requests: positiveInt.optional(),
  })
  .refine((tenant) => tenant.api_keys_env !== undefined || tenant.api_key_sha256 !== undefined, {
    message: "a tenant needs api_keys_env or api_key_sha256",
  });

const webhooksSchema = z.strictObject({
  allow_private_networks: z.boolean().default(false),
  max_attempts: positiveInt.max(100).default(8),
  retry_schedule_ms: z
    .array(durationMs)
    .min(1)
    .default([5000, 30000, 120000, 600000, 1800000, 3600000, 7200000]),
});

const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;
const idRecord = <T extends z.ZodType>(value: T) =>
  z.record(z.string().regex(idPattern, "ids use letters, digits and . _ : / -"), value);

/** A model names a provider, or lists deployments (never both); every provider named exists. */
function checkModelTarget(
  config: { providers: Record<string, unknown> },
  id: string,
  model: z.infer<typeof modelSchema>,
  context: z.RefinementCtx,
): void {
  const known = Object.keys(config.providers).slice(0, 12).join(", ") || "none";
  const checkProvider = (provider: string, path: Array<string | number>) => {
    if (!Object.hasOwn(config.providers, provider)) {
      context.addIssue({
        code: "custom",
        path: ["models", id, ...path],
        message: `unknown provider "${provider}"; configured providers: ${known}`,
      });
    }
  };
  if (model.deployments === undefined) {
    if (model.provider === undefined) {
      context.addIssue({
        code: "custom",
        path: ["models", id, "provider"],
        message: "a model needs a provider, or deployments (a pool)",
      });
    } else checkProvider(model.provider, ["provider"]);
    if (model.strategy !== undefined) {
      context.addIssue({
        code: "custom",
        path: ["models", id, "strategy"],
        message: "strategy only applies to a model with deployments",
      });
    }
    return;
  }
  if (model.provider !== undefined) {
    context.addIssue({
      code: "custom",
      path: ["models", id, "provider"],
      message: "a pooled model names its providers in deployments; remove provider",
    });
  }
  const seen = new Set<string>();
  model.deployments.forEach((deployment, index) => {
    checkProvider(deployment.provider, ["deployments", index, "provider"]);
    if (seen.has(deployment.id)) {
      context.addIssue({
        code: "custom",
        path: ["models", id, "deployments", index, "id"],
        message: `deployment id "${deployment.id}" is used twice in this model`,
      });
    }
    seen.add(deployment.id);
  });
}

export const configSchema = z
  .strictObject({
    providers: idRecord(providerSchema),
    models: idRecord(modelSchema).refine((models) => Object.keys(models).length > 0, {
      error: "is empty: every request would be refused; configure at least one model (docs/configuration.md)",
    }),
    routes: idRecord(routeSchema).default({}),
    fallbacks: z.record(z.string(), z.array(z.string().min(1))).default({}),
    // Empty is a mistake (the last tenant deleted), not a request for open mode: that would take
    // every key off the API. Open mode is `tenants:` left out.
    tenants: idRecord(tenantSchema)
      .refine((tenants) => Object.keys(tenants).length > 0, {
        error:
          "is empty, which would open the API to everyone without a key: add a tenant, or remove `tenants:` to run in open mode on purpose",
      })
      .optional(),
    webhooks: webhooksSchema.default({
      allow_private_networks: false,
      max_attempts: 8,
      retry_schedule_ms: [5000, 30000, 120000, 600000, 1800000, 3600000, 7200000],
    }),
    alerts: alertsSchema.optional(),
  })
  .superRefine((config, context) => {
    // Ids are looked up as own keys: "constructor" or "toString" is no model, and no clash.
    const modelIds = Object.keys(config.models);
    const known = (list: string[]) => list.slice(0, 12).join(", ") || "none";
    for (const [id, model] of Object.entries(config.models)) {
      checkModelTarget(config, id, model, context);
    }
    for (const [id, route] of Object.entries(config.routes)) {
      if (Object.hasOwn(config.models, id)) {
        context.addIssue({
          code: "custom",
          path: ["routes", id],
          message: `"${id}" is both a model id and a route id; they share one namespace, rename one`,
        });
      }
      route.chain.forEach((hop, index) => {
        if (!Object.hasOwn(config.models, hop.model)) {
          context.addIssue({
            code: "custom",
            path: ["routes", id, "chain", index, "model"],
            message: `unknown model "${hop.model}"; configured models: ${known(modelIds)}`,
          });
        }
      });
    }
    checkAlertRules(config, context);
    for (const [id, list] of Object.entries(config.fallbacks)) {
      if (!Object.hasOwn(config.models, id)) {
        context.addIssue({ code: "custom", path: ["fallbacks", id], message: `unknown model "${id}"` });
      }
      list.forEach((model, index) => {
        if (!Object.hasOwn(config.models, model)) {
          context.addIssue({
            code: "custom",
            path: ["fallbacks", id, index],
            message: `unknown model "${model}"; configured models: ${known(modelIds)}`,
          });
        }
      });
    }
  });

export type ConfigFile = z.infer<typeof configSchema>;
export type ProviderConfig = ConfigFile["providers"][string];
export type ModelConfig = ConfigFile["models"][string];
export type RouteConfig = ConfigFile["routes"][string];
export type HopConfig = z.infer<typeof hopSchema>;
export type TenantConfig = NonNullable<ConfigFile["tenants"]>[string];
export type LimitsConfig = z.infer<typeof limitsSchema>;
export type BreakerConfig = z.infer<typeof breakerSchema>;
