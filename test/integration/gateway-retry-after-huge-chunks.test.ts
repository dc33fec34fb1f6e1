/**
 * Two deviations a black-box failure-injection audit found in the gateway:
 *
 * 1. After consecutive upstream 429s that named no time, the gateway's 429 said `Retry-After: 1`
 *    while the provider's cooldown had doubled (1, 2, 4, … s; contract, "Cooldowns"): a client
 *    that waited exactly Retry-After was refused again by Cascade's own cooldown, without any
 *    upstream call. The 429's attempt now carries the cooldown the settlement set.
 * 2. A streamed event larger than 8 MiB (MAX_UNREAD_BYTES) made the gateway drop the connection
 *    with no status line and no error event, though the caller was reading: the bound on what a
 *    caller leaves unread now counts beyond the longest event.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

interface Upstream {
  url: string;
  calls: Array<{ model: string; stream: boolean }>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function chunk(model: string, delta: Record<string, unknown>, finish: string | null = null) {
  return {
    id: "chatcmpl-audit",
    object: "chat.completion.chunk",
    created: 1764000000,
    model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  };
}

/** An OpenAI-compatible upstream whose behaviour is its model name. */
async function startUpstream(): Promise<Upstream> {
  const calls: Upstream["calls"] = [];
  const server = http.createServer((request, response) => {
    let raw = "";
    request.on("data", (part) => {
      raw += part;
    });
    request.on("end", () => {
      const body = JSON.parse(raw || "{}");
      const model = String(body.model);
      calls.push({ model, stream: Boolean(body.stream) });
      if (model.startsWith("always-429")) {
        // No Retry-After, no retry-after-ms, no x-ratelimit-reset-*: the cooldown is Cascade's own.
        response.writeHead(429, { "content-type": "application/json" });
        response.end(
          JSON.stringify({
            error: {
              message: "Rate limit reached",
              type: "requests",
              param: null,
              code: "rate_limit_exceeded",
            },
          }),
        );
        return;
      }
      if (model.startsWith("big-")) {
        // One content delta of N MB, then an ordinary finish, usage and [DONE].
        const megabytes = Number(model.slice(4));
        response.writeHead(200, { "content-type": "text/event-stream" });
        const send = (data: unknown) =>
          response.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
        send(chunk(model, { role: "assistant", content: "" }));
        send(chunk(model, { content: "w".repeat(megabytes * 1_000_000) }));
        send(chunk(model, {}, "stop"));
        send({
          id: "chatcmpl-audit",
          object: "chat.completion.chunk",
          created: 1764000000,
          model,
          choices: [],
          usage: {
            prompt_tokens: 10,
            completion_tokens: megabytes * 250_000,
            total_tokens: 10 + megabytes * 250_000,
          },
        });
        send("[DONE]");
        response.end();
        return;
      }
      response.writeHead(404);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let upstream: Upstream;
let stack: Stack;

beforeAll(async () => {
  upstream = await startUpstream();
  const model = (name: string, provider: string) => ({
    provider,
    name,
    price: { input_per_mtok: 1, output_per_mtok: 2 },
  });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up" },
    withoutWorker: true,
    config: {
      providers: {
        // One provider per scenario, so that cooldowns do not leak between them.
        limited: { type: "openai", base_url: upstream.url, api_key_env: "UP_KEY" },
        retried: { type: "openai", base_url: upstream.url, api_key_env: "UP_KEY" },
        big: { type: "openai", base_url: upstream.url, api_key_env: "UP_KEY" },
      },
      models: {
        "m-429": model("always-429", "limited"),
        "m-429-retried": model("always-429-retried", "retried"),
        "m-big-12": model("big-12", "big"),
        "m-big-16": model("big-16", "big"),
      },
      routes: {
        // A short sync deadline: the gateway answers 429 instead of sleeping out the cooldown.
        "r-429": { sync_deadline_ms: 200, chain: [{ model: "m-429" }] },
        // The hop tried again within one request: its later 429s replace its first one's cooldown.
        "r-429-retried": { sync_deadline_ms: 2500, chain: [{ model: "m-429-retried", max_retries: 3 }] },
        "r-big-12": { chain: [{ model: "m-big-12" }] },
        "r-big-16": { chain: [{ model: "m-big-16" }] },
      },
    },
  });
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
});

function chat(model: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 20, ...extra }),
    signal: AbortSignal.timeout(20_000),
  });
}

describe("gateway Retry-After after consecutive 429s without hints", () => {
  it("a caller that waits Retry-After reaches the upstream again (it is not refused by a longer cooldown)", async () => {
    const log: string[] = [];
    for (let round = 0; round < 3; round += 1) {
      const callsBefore = upstream.calls.filter((call) => call.model === "always-429").length;
      const answer = await chat("r-429");
      await answer.text();
      const reachedUpstream =
        upstream.calls.filter((call) => call.model === "always-429").length > callsBefore;
      const retryAfter = Number(answer.headers.get("retry-after"));
      log.push(
        `round ${round}: status ${answer.status}, upstream called: ${reachedUpstream}, Retry-After ${retryAfter}`,
      );
      expect(answer.status).toBe(429);
      // Obeying the header must be enough: every round after the first waited exactly Retry-After.
      expect(reachedUpstream, log.join("\n")).toBe(true);
      // The cooldown doubles with each 429 of the streak, and the header says so.
      expect(retryAfter, log.join("\n")).toBe(2 ** round);
      await sleep(retryAfter * 1000 + 150);
    }
  }, 60_000);

  it("after retries of one hop, the header is the last cooldown's, not the first's", async () => {
    const called = () => upstream.calls.filter((call) => call.model === "always-429-retried").length;
    // 429 (cooled 1 s), waited for, tried again: 429 (cooled 2 s), whose wait passes the deadline.
    const first = await chat("r-429-retried");
    await first.text();
    expect(first.status).toBe(429);
    expect(called()).toBe(2);
    const retryAfter = Number(first.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(2);
    await sleep(retryAfter * 1000 + 150);
    // A caller that waited it and will not wait more finds the provider open.
    const second = await chat("r-429-retried", {}, { "x-cascade-deadline-ms": "0" });
    await second.text();
    expect(second.status).toBe(429);
    expect(called()).toBe(3);
  }, 60_000);
});

describe("huge stream events through the gateway", () => {
  for (const route of ["r-big-12", "r-big-16"]) {
    it(`${route}: a reading caller gets the whole answer and [DONE], not an empty reply`, async () => {
      let status = 0;
      let text = "";
      let failure = "";
      try {
        const answer = await chat(route, { stream: true });
        status = answer.status;
        text = await answer.text();
      } catch (error) {
        failure = String((error as { cause?: unknown }).cause ?? error);
      }
      expect(failure, "the API closed the connection without an answer").toBe("");
      expect(status).toBe(200);
      expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
      // The one huge delta, whole: N million characters of content.
      const megabytes = Number(route.slice("r-big-".length));
      const content = text
        .split("\n\n")
        .filter((event) => event.startsWith("data: {"))
        .map((event) => JSON.parse(event.slice("data: ".length)).choices?.[0]?.delta?.content ?? "")
        .join("");
      expect(content.length).toBe(megabytes * 1_000_000);
    }, 60_000);
  }
});
