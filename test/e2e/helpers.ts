/**
 * Shared pieces of the end-to-end tests: the config that points Cascade at the fake OpenAI
 * upstream, small HTTP helpers for the jobs API, and a raw RESP client (the repo root cannot
 * resolve ioredis) for the few Redis commands the tests send themselves.
 */
import net from "node:net";

export const FAKE_KEY_VALUE = "sk-e2e-fake-key-0d6f1c93b2";

/** providers.fake -> the fake; primary (up-primary, 2 s timeout) falls back to backup (up-backup). */
export function fakeConfig(fakeUrl: string, options: { primaryTimeoutMs?: number } = {}) {
  return {
    providers: { fake: { type: "openai", base_url: fakeUrl, api_key_env: "FAKE_KEY" } },
    models: {
      primary: {
        provider: "fake",
        name: "up-primary",
        capabilities: ["tools", "json"],
        price: { input_per_mtok: 1, output_per_mtok: 2 },
      },
      backup: { provider: "fake", name: "up-backup", price: { input_per_mtok: 0.5, output_per_mtok: 1 } },
    },
    routes: {
      default: {
        chain: [{ model: "primary", timeout_ms: options.primaryTimeoutMs ?? 2000 }, { model: "backup" }],
      },
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary fields of the job object.
export type Json = any;

export interface HttpResult {
  status: number;
  body: Json;
  headers: Headers;
}

export async function http(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 70_000,
  apiKey?: string,
): Promise<HttpResult> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let parsed: Json = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON; keep the text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

/** `http` with a tenant's API key (as a bearer token), or none. */
export function call(baseUrl: string, method: string, path: string, apiKey?: string, body?: unknown) {
  return http(baseUrl, method, path, body, 20_000, apiKey);
}

/** POST /v1/jobs; asserts nothing, returns the raw answer. */
export function postJob(baseUrl: string, body: unknown): Promise<HttpResult> {
  return http(baseUrl, "POST", "/v1/jobs", body);
}

/** GET /v1/jobs/:id?wait=N, re-polling until the job is terminal or `totalMs` has passed. */
export async function waitForTerminal(baseUrl: string, jobId: string, totalMs = 30_000): Promise<Json> {
  const deadline = Date.now() + totalMs;
  let last: HttpResult | undefined;
  while (Date.now() < deadline) {
    const waitS = Math.max(1, Math.min(20, Math.floor((deadline - Date.now()) / 1000)));
    last = await http(baseUrl, "GET", `/v1/jobs/${jobId}?wait=${waitS}`);
    if (last.status !== 200)
      throw new Error(`GET /v1/jobs/${jobId} answered ${last.status}: ${JSON.stringify(last.body)}`);
    if (["succeeded", "failed", "cancelled"].includes(last.body.status)) return last.body;
  }
  throw new Error(`job ${jobId} not terminal after ${totalMs} ms: ${JSON.stringify(last?.body)}`);
}

export function chatRequest(content: string, extra: Record<string, unknown> = {}) {
  return { messages: [{ role: "user", content }], max_tokens: 50, ...extra };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 25 ms until it is true (or throws after `timeoutMs`). */
export async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Sends one command over raw RESP and returns the first reply line (e.g. "+OK"). */
export function redisCommand(url: string, ...parts: string[]): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolveReply, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    let received = "";
    socket.setTimeout(3_000, () => {
      socket.destroy();
      reject(new Error(`no reply from ${url} to ${parts.join(" ")}`));
    });
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      const end = received.indexOf("\r\n");
      if (end >= 0) {
        socket.destroy();
        resolveReply(received.slice(0, end));
      }
    });
    socket.write(
      `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join("")}`,
    );
  });
}
