import { ConfigError, loadConfig, OPERATORS_OWNER } from "@cascade/shared";
import { describe, expect, it } from "vitest";
import { resolveTenantSecrets } from "./tenant-secrets.js";

const base = {
  providers: { sim: { type: "simulated" } },
  models: { small: { provider: "sim" } },
  routes: { default: { chain: [{ model: "small" }] } },
  tenants: { acme: { api_key_sha256: ["a".repeat(64)], webhook_secret_env: "ACME_SECRET" } },
  alerts: { webhook_urls: ["https://ops.example.com/alerts"], webhook_secret_env: "OPS_SECRET" },
};
const good = `whsec_${Buffer.from("cascade-test-secret-0123456789ab").toString("base64")}`;
// Passes the config's whsec_<base64> check, yet decodes to 3 bytes: the worker refuses it.
const short = `whsec_${Buffer.from("abc").toString("base64")}`;

function startupError(env: Record<string, string>): string {
  try {
    resolveTenantSecrets(loadConfig(env, { raw: base }));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the secrets to be refused");
}

describe("resolveTenantSecrets", () => {
  it("decodes a tenant's and the operators' secrets", () => {
    const { keys, warnings } = resolveTenantSecrets(
      loadConfig({ ACME_SECRET: good, OPS_SECRET: `${good} ${good}` }, { raw: base }),
    );
    expect(keys.get("acme")).toHaveLength(1);
    expect(keys.get(OPERATORS_OWNER)).toHaveLength(2);
    expect(warnings).toEqual([]);
  });

  it("names the setting and its variable when a secret is too short to sign with", () => {
    expect(startupError({ ACME_SECRET: short, OPS_SECRET: good })).toMatch(
      /^tenants\.acme\.webhook_secret_env: ACME_SECRET secret 1 holds 3 bytes, too few/,
    );
    expect(startupError({ ACME_SECRET: good, OPS_SECRET: `${good},${short}` })).toMatch(
      /^alerts\.webhook_secret_env: OPS_SECRET secret 2 holds 3 bytes, too few/,
    );
  });
});
