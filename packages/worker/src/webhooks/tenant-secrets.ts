import { type Config, ConfigError, OPERATORS_OWNER } from "@cascade/shared";
import { parseWebhookSecrets } from "./signing.js";

export interface TenantSecrets {
  /** Decoded signing keys per tenant; a tenant missing here gets unsigned webhooks. */
  keys: ReadonlyMap<string, readonly Buffer[]>;
  /** Loud startup warnings: who gets unsigned webhooks. */
  warnings: string[];
}

/**
 * Reads every tenant's `webhook_secret_env` once at startup. A variable that is named but unset
 * or malformed stops the worker (like a provider's `api_key_env`); a tenant without
 * `webhook_secret_env`, and open mode, get unsigned webhooks with a warning.
 */
export function resolveTenantSecrets(config: Config): TenantSecrets {
  const keys = new Map<string, readonly Buffer[]>();
  const warnings: string[] = [];
  if (config.openMode) {
    warnings.push(
      "UNSIGNED WEBHOOKS: open mode has no tenants and so no webhook secret; webhooks carry webhook-id and webhook-timestamp but no webhook-signature. Configure tenants with webhook_secret_env before relying on webhooks",
    );
  }
  for (const tenant of config.tenants.values()) {
    const name = tenant.config.webhook_secret_env;
    if (!name) {
      warnings.push(
        `UNSIGNED WEBHOOKS: tenant "${tenant.id}" has no webhook_secret_env, so its webhooks carry no webhook-signature`,
      );
      continue;
    }
    if (!tenant.webhookSecret?.trim()) {
      throw new ConfigError(
        `tenants.${tenant.id}.webhook_secret_env: the environment variable ${name} is not set; set it to a whsec_ secret (Standard Webhooks) or remove webhook_secret_env`,
      );
    }
    try {
      keys.set(tenant.id, parseWebhookSecrets(tenant.webhookSecret));
    } catch (error) {
      throw new ConfigError(
        `tenants.${tenant.id}.webhook_secret_env: ${name} ${(error as Error).message}; use whsec_<base64>, several separated by spaces or commas while rotating`,
      );
    }
  }
  // Alert webhooks (owner OPERATORS_OWNER, which no tenant id can be) are signed with the alerts secret.
  if (config.alertsWebhookSecret) {
    try {
      keys.set(OPERATORS_OWNER, parseWebhookSecrets(config.alertsWebhookSecret));
    } catch (error) {
      throw new ConfigError(
        `alerts.webhook_secret_env: ${config.file.alerts?.webhook_secret_env} ${(error as Error).message}; use whsec_<base64>`,
      );
    }
  }
  return { keys, warnings };
}
