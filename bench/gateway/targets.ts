/**
 * The three ways to the fake upstream the bench measures, and how each is started and checked:
 *
 * - direct: the fake itself (the baseline of every figure);
 * - cascade: Cascade's API process (`node packages/api/dist/main.js`), a provider of type openai
 *   on the fake with breaker, never-denying rpm/tpm buckets and a priced model, a route `default`
 *   with a fallback model, and a tenant with a never-denying budget;
 * - portkey: the Portkey open-source gateway from npm (`@portkey-ai/gateway`, its shipped
 *   build/start-server.js), told per request to use provider openai on the fake
 *   (`x-portkey-provider: openai`, `x-portkey-custom-host`).
 *
 * All three receive the same OpenAI chat-completions body (only `model` differs: Cascade's names
 * its route) from the same clients.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NEVER_DENYING_BUDGET, NEVER_DENYING_LIMITS } from "../resilience/workload.js";
import { repoRoot } from "../support/modules.js";
import { findFreePort } from "../support/redis-server.js";
import { FAKE_CONTENT } from "./fake-upstream.js";
import type { Mode, TargetName } from "./options.js";
import { type Child, spawnNode, waitForHttp, waitForLine } from "./processes.js";

const here = import.meta.dirname;
const PROFILE_PRELOAD = join(here, "profile-preload.mjs");
const PORTKEY_PRELOAD = join(here, "portkey-preload.mjs");
export const PORTKEY_ENTRY = join(
  repoRoot,
  "node_modules",
  "@portkey-ai",
  "gateway",
  "build",
  "start-server.js",
);
const CASCADE_ENTRY = join(repoRoot, "packages", "api", "dist", "main.js");

/** What the clients send; only `model` differs between targets. */
export function requestBody(model: string, mode: Mode): string {
  return JSON.stringify({
    model,
    messages: [{ role: "user", content: "Say hi" }],
    max_tokens: 16,
    ...(mode === "stream" ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
}

export interface Target {
  name: TargetName;
  url: string;
  headers: Record<string, string>;
  model: string;
  /** The gateway's process (undefined for direct). */
  child?: Child;
}

export interface ProfileSetup {
  directory: string;
}

function profileEnv(profile: ProfileSetup | undefined, prefix: string): NodeJS.ProcessEnv {
  return profile ? { BENCH_PROFILE_DIR: profile.directory, BENCH_PROFILE_PREFIX: prefix } : {};
}

// ---------------------------------------------------------------------------------------------
// The fake upstream

export interface Fake {
  port: number;
  child: Child;
  /** Requests it has answered so far. */
  counts(): Promise<{ completions: number; streams: number; other: number }>;
}

export async function startFake(): Promise<Fake> {
  const child = spawnNode("fake upstream", ["--import", "tsx", join(here, "fake-upstream.ts")], {
    cwd: repoRoot,
  });
  const match = await waitForLine(child, /listening (\d+)/, 20_000);
  const port = Number(match[1]);
  return {
    port,
    child,
    async counts() {
      const response = await fetch(`http://127.0.0.1:${port}/stats`);
      return (await response.json()) as { completions: number; streams: number; other: number };
    },
  };
}

export function directTarget(fake: Fake): Target {
  return {
    name: "direct",
    url: `http://127.0.0.1:${fake.port}/v1/chat/completions`,
    headers: { "content-type": "application/json", authorization: "Bearer sk-bench-upstream" },
    model: "gpt-4o-mini",
  };
}

// ---------------------------------------------------------------------------------------------
// Portkey

export async function startPortkey(fake: Fake, profile?: ProfileSetup): Promise<Target> {
  if (!existsSync(PORTKEY_ENTRY)) throw new Error(`${PORTKEY_ENTRY} is missing: run pnpm install`);
  const port = await findFreePort();
  const args = [
    ...["--import", PORTKEY_PRELOAD],
    ...(profile ? ["--import", PROFILE_PRELOAD] : []),
    PORTKEY_ENTRY,
    `--port=${port}`,
    "--headless",
  ];
  const child = spawnNode("portkey", args, {
    cwd: repoRoot,
    env: { ...process.env, ...profileEnv(profile, "portkey") },
    quiet: true,
  });
  await waitForHttp(child, `http://127.0.0.1:${port}/`, 30_000);
  return {
    name: "portkey",
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-bench-upstream",
      "x-portkey-provider": "openai",
      "x-portkey-custom-host": `http://127.0.0.1:${fake.port}/v1`,
    },
    model: "gpt-4o-mini",
    child,
  };
}

// ---------------------------------------------------------------------------------------------
// Cascade

export const CASCADE_PROVIDER = "fake-openai";
export const CASCADE_MODEL = "bench-gpt";
export const CASCADE_FALLBACK_MODEL = "bench-gpt-fallback";
export const CASCADE_TENANT = "bench";
export const BENCH_BREAKER = { failure_threshold: 0.5, min_requests: 10, window_ms: 30_000, open_ms: 15_000 };

/** The config file Cascade runs with: breakers, buckets and budgets all on, none ever denying. */
export function cascadeConfig(fakePort: number) {
  const model = (name: string) => ({
    provider: CASCADE_PROVIDER,
    name,
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 },
    context_window: 128000,
    capabilities: ["tools", "json"],
    limits: { ...NEVER_DENYING_LIMITS },
  });
  return {
    providers: {
      [CASCADE_PROVIDER]: {
        type: "openai",
        base_url: `http://127.0.0.1:${fakePort}/v1`,
        api_key_env: "BENCH_UPSTREAM_KEY",
        limits: { ...NEVER_DENYING_LIMITS },
        breaker: { ...BENCH_BREAKER },
      },
    },
    models: {
      [CASCADE_MODEL]: model("gpt-4o-mini"),
      [CASCADE_FALLBACK_MODEL]: model("gpt-4o-mini-fallback"),
    },
    routes: {
      default: {
        chain: [
          { model: CASCADE_MODEL, timeout_ms: 30000 },
          { model: CASCADE_FALLBACK_MODEL, timeout_ms: 30000 },
        ],
      },
    },
    tenants: {
      [CASCADE_TENANT]: { api_keys_env: "BENCH_API_KEYS", budget: { ...NEVER_DENYING_BUDGET } },
    },
  };
}

/**
 * `tsc -b packages/api` (which builds packages/shared and packages/engine through its project
 * references): a no-op when dist is current. Returns an error message instead of throwing, so
 * the bench can still measure direct and Portkey.
 */
export function buildApi(): string | undefined {
  const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
  const result = spawnSync(process.execPath, [tsc, "-b", join(repoRoot, "packages", "api")], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (result.status === 0) return undefined;
  return `tsc -b packages/api failed (exit ${result.status ?? result.signal})`;
}

export interface CascadeSetup {
  redisUrl: string;
  logLevel: string;
  profile?: ProfileSetup;
}

export async function startCascade(fake: Fake, setup: CascadeSetup): Promise<Target & { cleanup(): void }> {
  if (!existsSync(CASCADE_ENTRY)) throw new Error(`${CASCADE_ENTRY} is missing: run pnpm build`);
  const directory = mkdtempSync(join(tmpdir(), "cascade-bench-gateway-"));
  const configPath = join(directory, "cascade.json");
  writeFileSync(configPath, JSON.stringify(cascadeConfig(fake.port), null, 2));
  const port = await findFreePort();
  const apiKey = `cbk_${randomBytes(16).toString("hex")}`;
  const args = [...(setup.profile ? ["--import", PROFILE_PRELOAD] : []), CASCADE_ENTRY];
  const child = spawnNode("cascade", args, {
    cwd: repoRoot,
    env: {
      ...process.env,
      REDIS_URL: setup.redisUrl,
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: setup.logLevel,
      CASCADE_CONFIG: configPath,
      // Its own key prefix per run, so a shared REDIS_URL never mixes two runs' state.
      CASCADE_REDIS_PREFIX: `bench-gw-${Date.now().toString(36)}`,
      BENCH_UPSTREAM_KEY: "sk-bench-upstream",
      BENCH_API_KEYS: apiKey,
      ...profileEnv(setup.profile, "cascade"),
    },
    quiet: true,
  });
  try {
    await waitForHttp(child, `http://127.0.0.1:${port}/healthz`, 30_000);
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  return {
    name: "cascade",
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    model: "default",
    child,
    cleanup: () => rmSync(directory, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------------------------
// The check before measuring: a 200 carrying the fake's answer.

export interface CheckResult {
  ok: boolean;
  /** One line: what was wrong, or what came back. */
  detail: string;
  headers: Record<string, string>;
}

function contentOfStream(text: string): { content: string; done: boolean; usage: boolean; error?: string } {
  let content = "";
  let done = false;
  let usage = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data:")) continue;
    const data = line.slice(5).trim();
    if (data === "[DONE]") {
      done = true;
      continue;
    }
    try {
      const event = JSON.parse(data) as {
        choices?: { delta?: { content?: string } }[];
        usage?: unknown;
        error?: unknown;
      };
      if (event.error) return { content, done, usage, error: JSON.stringify(event.error) };
      content += event.choices?.[0]?.delta?.content ?? "";
      if (event.usage) usage = true;
    } catch {
      return { content, done, usage, error: `unparseable event ${data.slice(0, 120)}` };
    }
  }
  return { content, done, usage };
}

export async function checkTarget(target: Target, mode: Mode): Promise<CheckResult> {
  let response: Response;
  try {
    response = await fetch(target.url, {
      method: "POST",
      headers: target.headers,
      body: requestBody(target.model, mode),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (error) {
    return { ok: false, detail: `request failed: ${(error as Error).message}`, headers: {} };
  }
  const text = await response.text();
  const headers = Object.fromEntries(
    [...response.headers.entries()].filter(([name]) => /^x-(cascade|portkey)-|^content-type$/.test(name)),
  );
  const label = target.name === "direct" ? "the fake" : target.name === "cascade" ? "Cascade" : "Portkey";
  if (response.status !== 200) {
    return { ok: false, detail: `${label} answered ${response.status}: ${text.slice(0, 300)}`, headers };
  }
  if (mode === "json") {
    try {
      const body = JSON.parse(text) as { choices?: { message?: { content?: string } }[]; usage?: unknown };
      const content = body.choices?.[0]?.message?.content;
      if (content !== FAKE_CONTENT) {
        return {
          ok: false,
          detail: `${label} answered 200 without the fake's content: ${text.slice(0, 300)}`,
          headers,
        };
      }
      return { ok: true, detail: `200, "${content}", usage ${body.usage ? "yes" : "no"}`, headers };
    } catch {
      return { ok: false, detail: `${label} answered 200 with no JSON: ${text.slice(0, 300)}`, headers };
    }
  }
  if (!response.headers.get("content-type")?.includes("text/event-stream")) {
    return {
      ok: false,
      detail: `${label} answered 200 as ${response.headers.get("content-type")}, not text/event-stream: ${text.slice(0, 200)}`,
      headers,
    };
  }
  const stream = contentOfStream(text);
  if (stream.error || stream.content !== FAKE_CONTENT || !stream.done) {
    return {
      ok: false,
      detail: `${label} streamed ${stream.error ?? `"${stream.content}"${stream.done ? "" : " without [DONE]"}`}`,
      headers,
    };
  }
  return {
    ok: true,
    detail: `200 SSE, "${stream.content}", usage chunk ${stream.usage ? "yes" : "no"}`,
    headers,
  };
}
