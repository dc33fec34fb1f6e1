import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors/config-error.js";
import { loadConfig, sha256Hex } from "./load.js";

const minimal = {
  providers: { sim: { type: "simulated" } },
  models: { small: { provider: "sim" } },
  routes: { default: { chain: [{ model: "small" }] } },
};

function loadError(raw: unknown, env: Record<string, string> = {}): string {
  try {
    loadConfig(env, { raw });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected loadConfig to throw");
}

/** A config file with `text` in a fresh directory. */
function writeConfig(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "cascade-config-")), name);
  writeFileSync(path, text);
  return path;
}

describe("loadConfig", () => {
  it("refuses an alert rule that could never resolve (a resolve threshold of 0)", () => {
    const withRule = (rule: unknown) => ({ ...minimal, alerts: { rules: [rule] } });
    expect(loadError(withRule({ kind: "queue_age", fire_above_s: 60, resolve_below_s: 0 }))).toMatch(
      /alerts\.rules\.0\.resolve_below_s: must be above 0/,
    );
    expect(
      loadError(withRule({ kind: "fallback_rate", route: "default", fire_above: 0.2, resolve_below: 0 })),
    ).toMatch(/alerts\.rules\.0\.resolve_below: must be above 0/);
  });

  it("derives a resolve threshold left out from a lower fire threshold, and blames only one written", () => {
    const rules = (rule: Record<string, unknown>) =>
      loadConfig(
        {},
        {
          raw: {
            ...minimal,
            tenants: { acme: { api_key_sha256: ["a".repeat(64)], budget: { daily_usd: 5 } } },
            alerts: { rules: [rule] },
          },
        },
      ).file.alerts?.rules[0];
    expect(rules({ kind: "fallback_rate", route: "default", fire_above: 0.05 })).toMatchObject({
      resolve_below: expect.closeTo(0.025, 9),
    });
    expect(rules({ kind: "fallback_rate", route: "default" })).toMatchObject({
      fire_above: 0.2,
      resolve_below: 0.1,
    });
    expect(rules({ kind: "queue_age", fire_above_s: 20 })).toMatchObject({
      resolve_below_s: expect.closeTo(5, 9),
    });
    expect(rules({ kind: "queue_age", fire_above_s: 600 })).toMatchObject({ resolve_below_s: 30 });
    // A fire threshold the default resolve is still below keeps that default, as before.
    expect(rules({ kind: "queue_age", fire_above_s: 60 })).toMatchObject({ resolve_below_s: 30 });
    expect(rules({ kind: "fallback_rate", route: "default", fire_above: 0.15 })).toMatchObject({
      resolve_below: 0.1,
    });
    expect(rules({ kind: "budget_used", tenant: "acme", fire_above: 0.75 })).toMatchObject({
      resolve_below: 0.7,
    });
    expect(rules({ kind: "budget_used", tenant: "acme", fire_above: 0.4 })).toMatchObject({
      resolve_below: expect.closeTo(0.35, 9),
    });
    const withRule = (rule: unknown) => ({ ...minimal, alerts: { rules: [rule] } });
    expect(loadError(withRule({ kind: "queue_age", fire_above_s: 20, resolve_below_s: 30 }))).toMatch(
      /alerts\.rules\.0\.resolve_below_s: must be below fire_above_s \(20\)/,
    );
    expect(loadError(withRule({ kind: "fallback_rate", route: "default", fire_above: 1 }))).toMatch(
      /alerts\.rules\.0\.fire_above: must be below 1/,
    );
    expect(loadError(withRule({ kind: "fallback_rate", route: "default", fire_above: 0 }))).toMatch(
      /alerts\.rules\.0\.fire_above: must be above 0/,
    );
  });

  it("resolves provider headers, literal and from the environment, and names what is wrong", () => {
    const withHeaders = (headers: unknown) => ({
      ...minimal,
      providers: { sim: { type: "simulated", headers } },
    });
    const config = loadConfig(
      { APP_TITLE: "My app" },
      { raw: withHeaders({ "HTTP-Referer": "https://example.com", "X-Title": { env: "APP_TITLE" } }) },
    );
    expect(config.providerHeaders.get("sim")).toEqual({
      "HTTP-Referer": "https://example.com",
      "X-Title": "My app",
    });
    expect(loadError(withHeaders({ "X-Title": { env: "APP_TITLE" } }))).toMatch(
      /providers\.sim\.headers\.X-Title: environment variable APP_TITLE is not set/,
    );
    for (const empty of ["", "  "]) {
      expect(loadError(withHeaders({ "X-Title": { env: "APP_TITLE" } }), { APP_TITLE: empty })).toMatch(
        /providers\.sim\.headers\.X-Title: environment variable APP_TITLE is set but empty; export it/,
      );
    }
    expect(loadError(withHeaders({ Authorization: "Bearer x" }))).toMatch(
      /providers\.sim\.headers\.Authorization: is set by Cascade itself/,
    );
    expect(loadError(withHeaders({ "X-Bad": "a\r\nInjected: 1" }))).toMatch(/providers\.sim\.headers\.X-Bad/);
    expect(loadError(withHeaders({ "bad name": "x" }))).toMatch(/must be an HTTP header name/);
    expect(loadError(withHeaders({ "X-Title": { env: "APP_TITLE" } }), { APP_TITLE: "a\nb" })).toMatch(
      /holds CR, LF, NUL or a character beyond Latin-1/,
    );
    expect(loadError(withHeaders({ "X-Title": "我的应用" }))).toMatch(
      /providers\.sim\.headers\.X-Title: .*Latin-1/,
    );
    expect(loadError(withHeaders({ "Transfer-Encoding": "chunked" }))).toMatch(
      /providers\.sim\.headers\.Transfer-Encoding: is set by Cascade itself/,
    );
  });

  it("loads the built-in demo config with defaults and warns about open mode", () => {
    const config = loadConfig({});
    expect(config.source).toBe("built-in demo config");
    expect(config.settings).toMatchObject({
      REDIS_URL: "redis://127.0.0.1:6379",
      PORT: 3000,
      HOST: "127.0.0.1",
      WORKER_CONCURRENCY: 50,
    });
    expect(config.openMode).toBe(true);
    expect(config.warnings.join("\n")).toMatch(/OPEN MODE/);
    expect(config.file.routes.default?.chain.length).toBeGreaterThan(1);
    expect(Object.isFrozen(config.file.models)).toBe(true);
  });

  it("reads YAML and JSON files named by CASCADE_CONFIG", () => {
    const dir = mkdtempSync(join(tmpdir(), "cascade-config-"));
    const yamlPath = join(dir, "config.yaml");
    writeFileSync(yamlPath, "providers:\n  sim: { type: simulated }\nmodels:\n  small: { provider: sim }\n");
    expect(Object.keys(loadConfig({ CASCADE_CONFIG: yamlPath }).file.models)).toEqual(["small"]);
    const jsonPath = join(dir, "config.json");
    writeFileSync(jsonPath, JSON.stringify(minimal));
    expect(loadConfig({ CASCADE_CONFIG: jsonPath }).file.routes.default?.chain).toEqual([{ model: "small" }]);
  });

  it("reads a file that starts with a BOM, and refuses what YAML would only warn about, in one line", () => {
    const dir = mkdtempSync(join(tmpdir(), "cascade-config-"));
    const write = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const yaml = "providers:\n  sim: { type: simulated }\nmodels:\n  small: { provider: sim }\n";
    expect(
      Object.keys(loadConfig({ CASCADE_CONFIG: write("bom.yaml", `\uFEFF${yaml}`) }).file.models),
    ).toEqual(["small"]);
    expect(
      loadConfig({ CASCADE_CONFIG: write("bom.json", `\uFEFF${JSON.stringify(minimal)}`) }).file.routes
        .default,
    ).toBeDefined();
    const tagged = write(
      "tagged.yaml",
      "providers:\n  sim: !custom { type: simulated }\nmodels:\n  small: { provider: sim }\n",
    );
    expect(() => loadConfig({ CASCADE_CONFIG: tagged })).toThrow(/tagged\.yaml: not valid \.yaml: .*!custom/);
    const two = write("two.yaml", `${yaml}---\n${yaml}`);
    expect(() => loadConfig({ CASCADE_CONFIG: two })).toThrow(/more than one YAML document/);
    const broken = write("broken.yaml", "providers:\n  sim: { type: simulated\nmodels: {}\n");
    let message = "";
    try {
      loadConfig({ CASCADE_CONFIG: broken });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/broken\.yaml: not valid \.yaml: .*line \d+/);
    expect(message).not.toMatch(/:\s*$/);
    expect(message).not.toContain("\n");
  });

  it("refuses openai-only provider settings on another type (they did nothing, silently)", () => {
    const wrong = writeConfig(
      "anthropic-openai-fields.yaml",
      "providers:\n  claude: { type: anthropic, api_key_env: K, openai_fields: forward, stream_options: drop }\nmodels:\n  c: { provider: claude }\n",
    );
    let message = "";
    try {
      loadConfig({ CASCADE_CONFIG: wrong, K: "sk-ant-x" });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/providers\.claude\.openai_fields: only applies to type: openai/);
    expect(message).toMatch(/providers\.claude\.stream_options: only applies to type: openai/);
  });

  it("refuses a config with no model (it started, and refused every request)", () => {
    const empty = writeConfig("empty-models.yaml", "providers: {}\nmodels: {}\n");
    expect(() => loadConfig({ CASCADE_CONFIG: empty })).toThrow(
      /models: is empty: every request would be refused/,
    );
  });

  it("refuses a JSON file with a key written twice, as YAML does (JSON.parse kept the last)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cascade-config-"));
    const path = join(dir, "dup.json");
    writeFileSync(
      path,
      `{"providers": {"sim": {"type": "simulated"}},
 "models": {"m1": {"provider": "sim", "price": {"input_per_mtok": 1, "output_per_mtok": 1}},
            "m1": {"provider": "sim"}}}`,
    );
    expect(() => loadConfig({ CASCADE_CONFIG: path })).toThrow(/dup\.json: not valid \.json: .*unique/);
    // The same values, each key once: read as before (a JSON string that YAML reads its own way too).
    writeFileSync(
      path,
      `{"providers": {"sim": {"type": "simulated"}}, "models": {"m1": {"provider": "sim", "name": "a\\/b: #c"}}}`,
    );
    expect(loadConfig({ CASCADE_CONFIG: path }).file.models.m1?.name).toBe("a/b: #c");
  });

  it("refuses a YAML file with a key written twice, naming the key and its line", () => {
    const dir = mkdtempSync(join(tmpdir(), "cascade-config-"));
    const path = join(dir, "dup.yaml");
    writeFileSync(
      path,
      "providers:\n  sim: { type: simulated }\nmodels:\n  m1: { provider: sim }\n  m1: { provider: sim }\n",
    );
    expect(() => loadConfig({ CASCADE_CONFIG: path })).toThrow(
      /dup\.yaml: not valid \.yaml: Map keys must be unique at line 5, column 3: "m1" is written twice$/,
    );
  });

  it("refuses a secret written where its variable's name goes, without quoting it", () => {
    const dir = mkdtempSync(join(tmpdir(), "cascade-config-"));
    const path = join(dir, "secret.yaml");
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    writeFileSync(
      path,
      `providers:\n  sim: { type: simulated }\nmodels:\n  small: { provider: sim }\ntenants:\n  acme: { api_keys_env: ACME_KEYS, webhook_secret_env: ${secret} }\n`,
    );
    let message = "";
    try {
      loadConfig({ CASCADE_CONFIG: path, ACME_KEYS: "k" });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/tenants\.acme\.webhook_secret_env: looks like a secret itself/);
    expect(message).not.toContain(secret);
  });

  it("refuses an empty tenants map (it ran the API in open mode, every key taken off)", () => {
    expect(() =>
      loadConfig(
        {},
        {
          raw: { providers: { sim: { type: "simulated" } }, models: { s: { provider: "sim" } }, tenants: {} },
        },
      ),
    ).toThrow(/tenants: is empty, which would open the API to everyone/);
  });

  it("takes YAML merge keys (shared settings between entries)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cascade-config-"));
    const path = join(dir, "merge.yaml");
    writeFileSync(
      path,
      [
        "providers:",
        "  sim: { type: simulated }",
        "models:",
        "  small: &base { provider: sim, price: { input_per_mtok: 1, output_per_mtok: 2 } }",
        "  large: { <<: *base, name: large-upstream }",
        "",
      ].join("\n"),
    );
    const models = loadConfig({ CASCADE_CONFIG: path }).file.models;
    expect(models.large).toMatchObject({
      provider: "sim",
      name: "large-upstream",
      price: { output_per_mtok: 2 },
    });
  });

  it("names the missing file and the fix", () => {
    expect(() => loadConfig({ CASCADE_CONFIG: "/nope/cascade.yaml" })).toThrow(
      /CASCADE_CONFIG=\/nope\/cascade.yaml: cannot read the file \(ENOENT\)/,
    );
  });

  it("rejects unknown keys, naming the path", () => {
    expect(loadError({ ...minimal, models: { small: { provider: "sim", colour: "red" } } })).toMatch(
      /models\.small\.colour: unknown key/,
    );
    expect(loadError({ ...minimal, extra: true })).toMatch(/extra: unknown key/);
  });

  it("rejects references to unknown providers, models and routes", () => {
    expect(loadError({ ...minimal, models: { small: { provider: "nope" } } })).toMatch(
      /models\.small\.provider: unknown provider "nope"/,
    );
    expect(loadError({ ...minimal, routes: { default: { chain: [{ model: "big" }] } } })).toMatch(
      /routes\.default\.chain\.0\.model: unknown model "big"/,
    );
    expect(loadError({ ...minimal, fallbacks: { small: ["ghost"] } })).toMatch(
      /fallbacks\.small\.0: unknown model "ghost"/,
    );
  });

  it("validates pooled models: provider or deployments, known providers, unique ids, keys from the environment", () => {
    const pooled = (model: unknown) => ({ ...minimal, models: { ...minimal.models, pooled: model } });
    const deployments = [
      { id: "east", provider: "sim", limits: { rpm: 600 }, weight: 2 },
      { id: "west", provider: "sim", name: "other", api_key_env: "WEST_KEY" },
    ];
    const config = loadConfig(
      { WEST_KEY: "sk-west" },
      { raw: pooled({ strategy: "least_busy", deployments }) },
    );
    expect(config.file.models.pooled?.deployments).toHaveLength(2);
    expect(config.providerKeys.get("pooled/west")).toBe("sk-west");
    expect(loadError(pooled({ provider: "sim", deployments }))).toMatch(
      /models\.pooled\.provider: a pooled model names its providers in deployments; remove provider/,
    );
    expect(loadError(pooled({}))).toMatch(
      /models\.pooled\.provider: a model needs a provider, or deployments/,
    );
    expect(loadError(pooled({ deployments: [{ id: "a", provider: "nope" }] }))).toMatch(
      /models\.pooled\.deployments\.0\.provider: unknown provider "nope"/,
    );
    expect(
      loadError(
        pooled({
          deployments: [
            { id: "a", provider: "sim" },
            { id: "a", provider: "sim" },
          ],
        }),
      ),
    ).toMatch(/models\.pooled\.deployments\.1\.id: deployment id "a" is used twice/);
    expect(loadError(pooled({ provider: "sim", strategy: "weighted" }))).toMatch(
      /models\.pooled\.strategy: strategy only applies to a model with deployments/,
    );
    expect(loadError(pooled({ deployments, strategy: "fastest" }))).toMatch(/models\.pooled\.strategy/);
    expect(loadError(pooled({ deployments: [] }))).toMatch(/a pool needs at least one deployment/);
    expect(loadError(pooled({ deployments: [{ id: "a/b", provider: "sim" }] }))).toMatch(
      /models\.pooled\.deployments\.0\.id/,
    );
    expect(
      loadError({ ...minimal, tenants: { acme: { api_key_sha256: ["0".repeat(64)], weight: 0 } } }),
    ).toMatch(/tenants\.acme\.weight/);
    expect(
      loadError({ ...minimal, tenants: { acme: { api_key_sha256: ["0".repeat(64)], max_concurrency: -1 } } }),
    ).toMatch(/tenants\.acme\.max_concurrency/);
  });

  it("knows only the ids the file names: none of every object's own properties (constructor, toString)", () => {
    expect(loadError({ ...minimal, routes: { default: { chain: [{ model: "constructor" }] } } })).toMatch(
      /routes\.default\.chain\.0\.model: unknown model "constructor"/,
    );
    expect(loadError({ ...minimal, fallbacks: { small: ["hasOwnProperty"] } })).toMatch(
      /fallbacks\.small\.0: unknown model "hasOwnProperty"/,
    );
    expect(loadError({ ...minimal, models: { small: { provider: "toString" } } })).toMatch(
      /models\.small\.provider: unknown provider "toString"/,
    );
    // No false clash with a model named like a property every object has.
    const config = loadConfig(
      {},
      { raw: { ...minimal, routes: { ...minimal.routes, toString: { chain: [{ model: "small" }] } } } },
    );
    expect(Object.keys(config.file.routes)).toEqual(["default", "toString"]);
    expect(config.file.models.constructor).toBeUndefined();
  });

  it("refuses a time past what a timer can wait, naming its path", () => {
    expect(
      loadError({
        ...minimal,
        routes: { default: { chain: [{ model: "small", timeout_ms: 3_000_000_000 }] } },
      }),
    ).toMatch(/routes\.default\.chain\.0\.timeout_ms: must be at most 2147483647 ms/);
    expect(
      loadError({ ...minimal, routes: { default: { deadline_ms: 2 ** 31, chain: [{ model: "small" }] } } }),
    ).toMatch(/routes\.default\.deadline_ms: must be at most 2147483647 ms/);
    expect(
      loadConfig(
        {},
        {
          raw: { ...minimal, routes: { default: { chain: [{ model: "small", timeout_ms: 2 ** 31 - 1 }] } } },
        },
      ).file.routes.default?.chain[0]?.timeout_ms,
    ).toBe(2 ** 31 - 1);
  });

  it("refuses an empty CASCADE_CONFIG rather than run the demo config", () => {
    expect(() => loadConfig({ CASCADE_CONFIG: "" })).toThrow(/CASCADE_CONFIG is set but empty/);
  });

  it("says what a header value may be when it is neither form", () => {
    const withHeader = (value: unknown) => ({
      ...minimal,
      providers: {
        ...minimal.providers,
        o: { type: "openai", base_url: "http://127.0.0.1:9/v1", headers: { "X-A": value } },
      },
    });
    expect(loadError(withHeader({ evn: "FOO" }))).toMatch(
      /providers\.o\.headers\.X-A: .*evn.* \(a header is a string or \{ env: NAME \}\)/,
    );
    expect(loadError(withHeader({ env: "lower case" }))).toMatch(
      /headers\.X-A\.env: must be the NAME of an environment variable/,
    );
    expect(loadError(withHeader(5))).toMatch(
      /providers\.o\.headers\.X-A: must be a string or \{ env: NAME \}/,
    );
  });

  it("says what an id may hold when one does not", () => {
    expect(loadError({ ...minimal, models: { ...minimal.models, "gpt 4o": { provider: "sim" } } })).toMatch(
      /models\.gpt 4o: invalid id \(ids use letters, digits and \. _ : \/ -\)/,
    );
  });

  it("refuses an id that is both a model and a route", () => {
    expect(loadError({ ...minimal, routes: { small: { chain: [{ model: "small" }] } } })).toMatch(
      /routes\.small: "small" is both a model id and a route id/,
    );
  });

  it("validates values and env var names", () => {
    expect(loadError({ ...minimal, providers: { sim: { type: "bedrock" } } })).toMatch(
      /providers\.sim\.type/,
    );
    expect(
      loadError({ ...minimal, providers: { sim: { type: "openai", api_key_env: "sk-live-123" } } }),
    ).toMatch(/api_key_env: must be the NAME of an environment variable/);
    expect(loadError({ ...minimal, routes: { default: { chain: [] } } })).toMatch(
      /routes\.default\.chain: a route needs at least one hop/,
    );
  });

  it("refuses a base_url with a query string or fragment, which the appended endpoint would land in", () => {
    for (const url of [
      "https://res.example.com/openai/v1?api-version=2024-10-21",
      "https://api.example.com/v1#x",
    ]) {
      expect(loadError({ ...minimal, providers: { sim: { type: "openai", base_url: url } } })).toMatch(
        /providers\.sim\.base_url: must not hold a query string or fragment/,
      );
      const pooled = {
        ...minimal,
        providers: { sim: { type: "openai" } },
        models: { small: { deployments: [{ id: "east", provider: "sim", base_url: url }] } },
      };
      expect(loadError(pooled)).toMatch(/models\.small\.deployments\.0\.base_url: must not hold a query/);
    }
    expect(
      loadConfig(
        {},
        { raw: { ...minimal, providers: { sim: { type: "openai", base_url: "http://h:1/v1/" } } } },
      ).file.providers.sim?.base_url,
    ).toBe("http://h:1/v1/");
  });

  it("validates the environment", () => {
    expect(() => loadConfig({ WORKER_CONCURRENCY: "abc" })).toThrow(/WORKER_CONCURRENCY must be an integer/);
    expect(() => loadConfig({ REDIS_URL: "localhost:6379" })).toThrow(/REDIS_URL must start with redis:\/\//);
    expect(() => loadConfig({ LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL must be one of/);
  });

  it("resolves tenant keys as hashes and provider keys from the environment", () => {
    const config = loadConfig(
      { ACME_KEYS: "key-one, key-two", ACME_HOOK: "whsec_abc", SIM_KEY: "secret" },
      {
        raw: {
          ...minimal,
          providers: { sim: { type: "simulated", api_key_env: "SIM_KEY" } },
          tenants: {
            acme: { api_keys_env: "ACME_KEYS", webhook_secret_env: "ACME_HOOK" },
            beta: { api_key_sha256: [sha256Hex("beta-key")] },
          },
        },
      },
    );
    expect(config.openMode).toBe(false);
    expect([...(config.tenants.get("acme")?.keyHashes ?? [])]).toEqual([
      sha256Hex("key-one"),
      sha256Hex("key-two"),
    ]);
    expect(config.tenants.get("acme")?.webhookSecret).toBe("whsec_abc");
    expect(config.tenants.get("beta")?.keyHashes.has(sha256Hex("beta-key"))).toBe(true);
    expect(config.providerKeys.get("sim")).toBe("secret");
  });

  it("refuses one API key given to two tenants, naming them", () => {
    const tenants = {
      ops: { api_keys_env: "OPS_KEYS", admin: true },
      other: { api_keys_env: "OTHER_KEYS" },
    };
    expect(() =>
      loadConfig({ OPS_KEYS: "k-ops,k-shared", OTHER_KEYS: " k-shared " }, { raw: { ...minimal, tenants } }),
    ).toThrow(/tenants\.other: an API key of this tenant is also one of tenant ops's/);
    expect(() =>
      loadConfig(
        { OPS_KEYS: "k-ops" },
        {
          raw: { ...minimal, tenants: { ops: tenants.ops, other: { api_key_sha256: [sha256Hex("k-ops")] } } },
        },
      ),
    ).toThrow(/tenants\.other/);
  });
});
