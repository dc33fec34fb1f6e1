/**
 * A tenant's requests held open on one API process are capped by `tenants.<id>.max_open_requests`
 * (default 1000): gateway calls, job event streams and waiting GETs. Before, one tenant could
 * open streams without end (a black-box audit held 4,000 event streams, ~128 MB of the API's
 * memory) and take the process from every other tenant. Past the cap the next one is a 429
 * (`rate_limit_error`, code `too_many_open_requests`, `Retry-After`) until one of its own ends;
 * other tenants, and requests that are not held (an enqueue, a plain GET), are not touched.
 */
import { type ClientRequest, request as httpRequest, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

interface HeldStream {
  status: number;
  response: IncomingMessage;
  request: ClientRequest;
}

/** Opens `GET path` and resolves once its status line arrived, the response left open. */
function openStream(stack: Stack, path: string, key: string): Promise<HeldStream> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${stack.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
    request.on("response", (response) => resolve({ status: response.statusCode ?? 0, response, request }));
    request.on("error", reject);
    request.end();
  });
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("a tenant's open requests", () => {
  let stack: Stack;
  const held: HeldStream[] = [];
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      withoutWorker: true,
      env: { ACME_KEYS: "acme-key", GLOBEX_KEYS: "globex-key" },
      config: {
        providers: { sim: { type: "simulated", simulate: { latency_ms: [1500, 1500] } } },
        models: { slow: { provider: "sim" } },
        routes: { default: { chain: [{ model: "slow" }] } },
        tenants: {
          acme: { api_keys_env: "ACME_KEYS", max_open_requests: 3 },
          globex: { api_keys_env: "GLOBEX_KEYS" },
        },
      },
    });
  });
  afterAll(async () => {
    for (const stream of held) stream.request.destroy();
    await stack?.close();
  });

  async function queuedJob(key: string): Promise<string> {
    const created = await stack.request("POST", "/v1/jobs", {
      headers: { authorization: `Bearer ${key}` },
      body: { request: { messages: [{ role: "user", content: "hi" }] } },
    });
    expect(created.status).toBe(202);
    return created.body.id as string;
  }

  it("answers 429 past the cap, counts every kind of held request, and frees a slot when one ends", async () => {
    const job = await queuedJob("acme-key");
    for (let index = 0; index < 3; index++) {
      const stream = await openStream(stack, `/v1/jobs/${job}/events`, "acme-key");
      held.push(stream);
      expect(stream.status).toBe(200);
    }

    // A fourth event stream, a waiting GET and a gateway call: each the 429.
    const refused = await stack.request("GET", `/v1/jobs/${job}/events`, {
      headers: { authorization: "Bearer acme-key" },
    });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.body.error).toMatchObject({
      type: "rate_limit_error",
      code: "too_many_open_requests",
      param: null,
    });
    expect(refused.body.error.message).toContain("tenants.acme.max_open_requests");
    const waiting = await stack.request("GET", `/v1/jobs/${job}?wait=5`, {
      headers: { authorization: "Bearer acme-key" },
    });
    expect(waiting.status).toBe(429);
    const acme = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: "acme-key", maxRetries: 0 });
    const gateway = await acme.chat.completions
      .create({ model: "default", messages: [{ role: "user", content: "hi" }] })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(gateway).toBeInstanceOf(OpenAI.RateLimitError);
    expect((gateway as InstanceType<typeof OpenAI.RateLimitError>).code).toBe("too_many_open_requests");

    // What is not held open is not refused: an enqueue, a plain read.
    expect(
      (await stack.request("GET", `/v1/jobs/${job}`, { headers: { authorization: "Bearer acme-key" } }))
        .status,
    ).toBe(200);
    await queuedJob("acme-key");

    // Another tenant opens its own.
    const globexJob = await queuedJob("globex-key");
    const other = await openStream(stack, `/v1/jobs/${globexJob}/events`, "globex-key");
    held.push(other);
    expect(other.status).toBe(200);

    // One of acme's streams ends (its client leaves): the next one is taken.
    held[0]?.request.destroy();
    await eventually(async () => {
      const again = await openStream(stack, `/v1/jobs/${job}/events`, "acme-key");
      held.push(again);
      if (again.status !== 200) again.request.destroy();
      return again.status === 200;
    });
  });

  it("frees the slots of requests that ended: a tenant's many short calls never reach the cap", async () => {
    for (const stream of held.splice(0)) stream.request.destroy();
    const acme = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: "acme-key", maxRetries: 0 });
    // Once the server saw those streams close, the cap's three waiting GETs at once are answered.
    const job = await queuedJob("acme-key");
    const wait = () =>
      stack.request("GET", `/v1/jobs/${job}?wait=1`, { headers: { authorization: "Bearer acme-key" } });
    await eventually(async () =>
      (await Promise.all([wait(), wait(), wait()])).every((got) => got.status === 200),
    );
    // Three gateway calls at once (the cap), twice over: each answered.
    for (let round = 0; round < 2; round++) {
      const answers = await Promise.all(
        [0, 1, 2].map(() =>
          acme.chat.completions.create({ model: "default", messages: [{ role: "user", content: "hi" }] }),
        ),
      );
      expect(answers.map((answer) => answer.object)).toEqual([
        "chat.completion",
        "chat.completion",
        "chat.completion",
      ]);
    }
    // A stream, read to its end.
    const stream = await acme.chat.completions.create({
      model: "default",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    const answers = await Promise.all(
      [0, 1, 2].map(() =>
        acme.chat.completions.create({ model: "default", messages: [{ role: "user", content: "hi" }] }),
      ),
    );
    expect(answers).toHaveLength(3);
  }, 30_000);

  it("frees the slots of pipelined requests whose connection dropped before their answers (they leaked)", async () => {
    const job = await queuedJob("acme-key");
    const wait = () =>
      stack.request("GET", `/v1/jobs/${job}?wait=1`, { headers: { authorization: "Bearer acme-key" } });
    await eventually(async () =>
      (await Promise.all([wait(), wait(), wait()])).every((got) => got.status === 200),
    );
    const { port } = new URL(stack.url);
    const body = JSON.stringify({ model: "default", messages: [{ role: "user", content: "hi" }] });
    const requests = {
      waiting: `GET /v1/jobs/${job}?wait=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-key\r\n\r\n`,
      gateway: `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-key\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    };
    for (const text of Object.values(requests)) {
      // Three requests in one write on one connection (HTTP/1.1 pipelining): the second and third
      // are handled while the first holds the socket; the connection drops before any answer.
      const socket = connect(Number(port), "127.0.0.1");
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(text + text + text);
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.destroy();
      // Every slot comes back: the cap's three waiting GETs at once are answered.
      await eventually(
        async () => (await Promise.all([wait(), wait(), wait()])).every((got) => got.status === 200),
        8000,
      );
    }
  }, 30_000);
});
