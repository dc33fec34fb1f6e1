import { STATUS_CODES } from "node:http";
import { connect } from "node:net";
import { createKeys } from "@cascade/shared";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: {
    sim: { type: "simulated", simulate: { latency_ms: 0 } },
    slow: { type: "simulated", simulate: { latency_ms: 5000 } },
  },
  models: {
    fast: { provider: "sim", capabilities: ["tools", "json", "vision"] },
    sluggish: { provider: "slow" },
  },
  routes: {
    default: { chain: [{ model: "fast" }] },
    slow: { chain: [{ model: "sluggish", timeout_ms: 30000 }] },
  },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS" },
    globex: { api_keys_env: "GLOBEX_KEYS" },
  },
};

const acme = { authorization: "Bearer acme-key-1" };
const globex = { authorization: "Bearer globex-key" };
const hello = { request: { messages: [{ role: "user", content: "Hello" }], max_tokens: 20 } };

describe("jobs API", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { ACME_KEYS: "acme-key-1,acme-key-2", GLOBEX_KEYS: "globex-key" },
    });
  });
  afterAll(() => stack?.close());

  it("takes a job (202, queued) and returns its result through ?wait", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, metadata: { doc_id: "42" } },
      headers: acme,
    });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({
      object: "job",
      status: "queued",
      route: "default",
      metadata: { doc_id: "42" },
      attempts: [],
    });
    expect(created.body.id).toMatch(/^job_/);
    expect(created.body.created_at).toBeTypeOf("number");
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: acme });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({
      id: created.body.id,
      status: "succeeded",
      model: "fast",
      provider: "sim",
    });
    expect(done.body.result).toMatchObject({
      object: "chat.completion",
      choices: [{ message: { role: "assistant" } }],
    });
    expect(done.body.finished_at).toBeGreaterThanOrEqual(done.body.started_at);
  });

  it("accepts OpenAI's fields it does not honour in a request, and does not keep them", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...hello.request, store: false, logprobs: false, metadata: { a: "b" } } },
      headers: acme,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const unknown = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...hello.request, colour: "blue" } },
      headers: acme,
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/colour/);
  });

  it("takes max_cost_usd: 0 as free models only: an unpriced model runs", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, max_cost_usd: 0 },
      headers: acme,
    });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: acme });
    expect(done.body).toMatchObject({ status: "succeeded", model: "fast", cost_usd: 0 });
  });

  it("takes null for an optional request field as unset", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...hello.request, temperature: null, max_tokens: null, stop: null } },
      headers: acme,
    });
    expect(created.status).toBe(202);
  });

  it("takes null for an optional job field as unset, as for the request's (clients that send every field)", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: {
        ...hello,
        route: null,
        models: null,
        webhook: null,
        metadata: null,
        priority: null,
        max_cost_usd: null,
        user: null,
        deadline_ms: null,
      },
      headers: acme,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body).toMatchObject({ status: "queued", route: "default", metadata: {} });
    expect(created.body.user ?? null).toBeNull();
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: acme });
    expect(done.body).toMatchObject({ status: "succeeded", model: "fast" });
    // null is no value: the request itself cannot be null.
    const noRequest = await stack.request("POST", "/v1/jobs", { body: { request: null }, headers: acme });
    expect(noRequest.status).toBe(400);
    expect(noRequest.body.error.param).toBe("request");
  });

  it("refuses model and route names that are properties of every object (constructor, toString): unknown", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...hello, models: ["constructor"] }, "models[0]"],
      [{ ...hello, route: "toString" }, "route"],
      [{ request: { ...hello.request, model: "constructor" } }, "request.model"],
      [{ request: { ...hello.request, model: "__proto__" } }, "request.model"],
    ];
    for (const [body, param] of cases) {
      const answer = await stack.request("POST", "/v1/jobs", { body, headers: acme });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error).toMatchObject({ type: "invalid_request_error", param });
    }
  });

  it("says what a message's content should be, or what is wrong inside it", async () => {
    const send = (content: unknown) =>
      stack.request("POST", "/v1/jobs", {
        body: { request: { messages: [{ role: "user", content }] } },
        headers: acme,
      });
    const number = await send(5);
    expect(number.status).toBe(400);
    expect(number.body.error).toMatchObject({
      type: "invalid_request_error",
      param: "request.messages[0].content",
    });
    expect(number.body.error.message).toMatch(/content must be a string or an array of content parts/);
    const part = await send([{ type: "text" }]);
    expect(part.status).toBe(400);
    expect(part.body.error.param).toBe("request.messages[0].content");
    expect(part.body.error.message).toMatch(/\[0\]\.text: .*expected string/);
    const system = await stack.request("POST", "/v1/jobs", {
      body: {
        request: {
          messages: [
            { role: "system", content: { text: "x" } },
            { role: "user", content: "hi" },
          ],
        },
      },
      headers: acme,
    });
    expect(system.status).toBe(400);
    expect(system.body.error.message).toMatch(/content must be a string or an array of text parts/);
  });

  it("takes OpenAI's request.user as the end user (per-user budgets), unless the job names one", async () => {
    const fromRequest = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...hello.request, user: "end-user-7" } },
      headers: acme,
    });
    expect(fromRequest.status).toBe(202);
    expect(fromRequest.body.user).toBe("end-user-7");
    const named = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...hello.request, user: "from-request" }, user: "from-job" },
      headers: acme,
    });
    expect(named.body.user).toBe("from-job");
    // OpenAI takes an empty user; it names nobody.
    const empty = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...hello.request, user: "" } },
      headers: acme,
    });
    expect(empty.status).toBe(202);
    expect(empty.body.user).toBeNull();
  });

  it("takes a bodyless POST or DELETE sent with Content-Type: application/json (as Stainless SDKs send them)", async () => {
    const jsonNoBody = { ...acme, "content-type": "application/json" };
    const created = await stack.request("POST", "/v1/jobs", { body: hello, headers: acme });
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: acme });
    expect(done.body.status).toBe("succeeded");
    const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: jsonNoBody });
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(409);
    const missing = await stack.request("POST", "/v1/batches/batch_nope/cancel", { headers: jsonNoBody });
    expect(missing.status, JSON.stringify(missing.body)).toBe(404);
    // A route that needs a body still says so, naming it.
    const bodyless = await stack.request("POST", "/v1/jobs", { headers: jsonNoBody });
    expect(bodyless.status).toBe(400);
    expect(bodyless.body.error.type).toBe("invalid_request_error");
    expect(bodyless.body.error.message).toMatch(/^body: /);
  });

  it("answers 404 for ids that are not a job's, BullMQ's own keys among them (they were 500s)", async () => {
    // A job that ran leaves BullMQ's keys (`events`, `completed`, `id`…) beside the jobs.
    const created = await stack.request("POST", "/v1/jobs", { body: hello, headers: acme });
    await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, { headers: acme });
    for (const id of ["id", "events", "completed", "meta", "events/events"]) {
      const read = await stack.request("GET", `/v1/jobs/${id}`, { headers: acme });
      expect(read.status, id).toBe(404);
      const cancel = await stack.request("DELETE", `/v1/jobs/${id}`, { headers: acme });
      expect([404, 405], id).toContain(cancel.status);
    }
    expect((await stack.request("GET", "/v1/jobs/events/events", { headers: acme })).status).toBe(404);
  });

  it("requires a valid bearer key and hides other tenants' jobs", async () => {
    expect((await stack.request("POST", "/v1/jobs", { body: hello })).status).toBe(401);
    const wrong = await stack.request("POST", "/v1/jobs", {
      body: hello,
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.type).toBe("authentication_error");
    const created = await stack.request("POST", "/v1/jobs", {
      body: hello,
      headers: { authorization: "Bearer acme-key-2" },
    });
    expect(created.status).toBe(202);
    const other = await stack.request("GET", `/v1/jobs/${created.body.id}`, { headers: globex });
    expect(other.status).toBe(404);
    expect(JSON.stringify(other.body)).not.toContain("Hello");
    expect((await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: globex })).status).toBe(
      404,
    );
    expect((await stack.request("GET", `/v1/jobs/${created.body.id}`, { headers: acme })).status).toBe(200);
  });

  it("names the bad field in every validation error", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /request: /],
      [{ request: { messages: [] } }, /request\.messages: messages must hold at least one message/],
      [{ request: { messages: [{ role: "wizard", content: "x" }] } }, /request\.messages\[0\]\.role/],
      [{ ...hello, priority: 11 }, /priority/],
      [{ ...hello, max_cost_usd: -0.5 }, /max_cost_usd/],
      [{ ...hello, surprise: true }, /unknown field "surprise"/],
      [{ request: { ...hello.request, temperature: 7 } }, /request\.temperature/],
      [{ ...hello, webhook: { url: "ftp://x" } }, /webhook\.url/],
      [{ ...hello, route: "nope" }, /route: unknown route "nope"/],
      [{ ...hello, route: "constructor" }, /route: unknown route "constructor"/],
      [{ ...hello, models: ["fast", "ghost"] }, /models\[1\]: unknown model "ghost"/],
      [
        { request: { ...hello.request, model: "gpt-9" } },
        /request\.model: "gpt-9" is neither a configured model nor a route/,
      ],
    ];
    for (const [body, message] of cases) {
      const response = await stack.request("POST", "/v1/jobs", { body, headers: acme });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.type).toBe("invalid_request_error");
      expect(response.body.error.message).toMatch(message);
    }
  });

  it("codes a name nothing configures model_not_found, as the gateway does, and other mistakes null", async () => {
    const cases: Array<[unknown, string, string | null]> = [
      [{ ...hello, route: "nope" }, "route", "model_not_found"],
      [{ ...hello, models: ["fast", "ghost"] }, "models[1]", "model_not_found"],
      [{ request: { ...hello.request, model: "gpt-9" } }, "request.model", "model_not_found"],
      [{ ...hello, priority: 11 }, "priority", null],
    ];
    for (const [body, param, code] of cases) {
      const response = await stack.request("POST", "/v1/jobs", { body, headers: acme });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error, JSON.stringify(body)).toMatchObject({
        type: "invalid_request_error",
        param,
        code,
      });
    }
  });

  it("names an unknown field in param, where OpenAI's SDKs read it", async () => {
    const cases: Array<[string, unknown, string]> = [
      ["/v1/jobs", { ...hello, colour: "red" }, "colour"],
      ["/v1/jobs", { ...hello, webhook: { url: "https://example.com/h", colour: 1 } }, "webhook.colour"],
      ["/v1/chat/completions", { model: "fast", messages: hello.request.messages, colour: "red" }, "colour"],
    ];
    for (const [path, body, param] of cases) {
      const response = await stack.request("POST", path, { body, headers: acme });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error, JSON.stringify(body)).toMatchObject({
        type: "invalid_request_error",
        param,
      });
      expect(response.body.error.message).toMatch(/unknown field "colour"/);
    }
  });

  it("answers requests Node's HTTP parser refuses in the contract's shape, then closes", async () => {
    const { hostname, port } = new URL(stack.url);
    const exchange = (bytes: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), hostname, () => socket.write(bytes));
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
        });
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
        socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer to ${JSON.stringify(bytes)}`)));
      });
    const cases: Array<[string, number]> = [
      ["NOT HTTP AT ALL\r\n\r\n", 400],
      // Both framings at once: request smuggling's shape.
      [
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
      ],
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
    ];
    for (const [bytes, status] of cases) {
      const answer = await exchange(bytes);
      expect(answer.split("\r\n")[0], bytes.slice(0, 40)).toBe(`HTTP/1.1 ${status} ${STATUS_CODES[status]}`);
      const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      expect(body.error).toMatchObject({ type: "invalid_request_error", param: null });
    }
  });

  it("answers framework errors in the contract's shape", async () => {
    const tooLarge = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "x".repeat(1024 * 1024 + 10) }] } },
      headers: acme,
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error.type).toBe("request_too_large_error");
    const wrongType = await stack.request("POST", "/v1/jobs", {
      body: "hi",
      headers: { ...acme, "content-type": "text/plain" },
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.error.type).toBe("unsupported_media_type_error");
    const badJson = await stack.request("POST", "/v1/jobs", { body: "{nope", headers: acme });
    expect(badJson.status).toBe(400);
    expect(badJson.body.error.message).toMatch(/not valid JSON/);
    const missing = await stack.request("GET", "/v1/nothing", { headers: acme });
    expect(missing.status).toBe(404);
    expect(missing.body.error.type).toBe("not_found_error");
    const wrongMethod = await stack.request("PATCH", "/v1/jobs", { headers: acme });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("POST");
    // A trailing slash names no route (the router matches exactly): 404, not a 405 saying "use POST".
    const slashed = await stack.request("POST", "/v1/jobs/", { body: hello, headers: acme });
    expect(slashed.status).toBe(404);
    expect(slashed.body.error.type).toBe("not_found_error");
    const tooLong = await stack.request("GET", "/v1/jobs/job_x?wait=61", { headers: acme });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.message).toMatch(/wait must be at most 60/);
    const badUrl = await stack.request("GET", "/v1/jobs/%ZZ", { headers: acme });
    expect(badUrl.status).toBe(400);
    expect(badUrl.body.error.type).toBe("invalid_request_error");
    const unknownJob = await stack.request("GET", "/v1/jobs/job_missing", { headers: acme });
    expect(unknownJob.status).toBe(404);
  });

  it("serves health, readiness and the OpenAPI document without a key", async () => {
    expect((await stack.request("GET", "/healthz")).body).toEqual({ status: "ok" });
    expect((await stack.request("GET", "/readyz")).body).toMatchObject({ status: "ready" });
    const openapi = await stack.request("GET", "/docs/json");
    expect(openapi.status).toBe(200);
    expect(Object.keys(openapi.body.paths)).toEqual(expect.arrayContaining(["/v1/jobs", "/v1/jobs/{id}"]));
  });

  it("replays an Idempotency-Key with the same body and refuses a different body", async () => {
    const headers = { ...acme, "idempotency-key": `key-${Date.now()}` };
    const first = await stack.request("POST", "/v1/jobs", { body: hello, headers });
    expect(first.status).toBe(202);
    const replay = await stack.request("POST", "/v1/jobs", { body: hello, headers });
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(first.body.id);
    // Where the job is, as the first answer said.
    expect(replay.headers.get("location")).toBe(`/v1/jobs/${first.body.id}`);
    expect(first.headers.get("location")).toBe(`/v1/jobs/${first.body.id}`);
    const changed = await stack.request("POST", "/v1/jobs", { body: { ...hello, priority: 1 }, headers });
    expect(changed.status).toBe(422);
    expect(changed.body.error.type).toBe("idempotency_error");
    // Scoped to the tenant: the same key from another tenant is a new job.
    const otherTenant = await stack.request("POST", "/v1/jobs", {
      body: hello,
      headers: { ...globex, "idempotency-key": headers["idempotency-key"] },
    });
    expect(otherTenant.status).toBe(202);
    expect(otherTenant.body.id).not.toBe(first.body.id);
  });

  it("gives concurrent retries with one Idempotency-Key exactly one job", async () => {
    const headers = { ...acme, "idempotency-key": `race-${Date.now()}` };
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => stack.request("POST", "/v1/jobs", { body: hello, headers })),
    );
    const ids = new Set(
      responses.filter((response) => response.status < 300).map((response) => response.body.id),
    );
    expect(ids.size).toBe(1);
    for (const response of responses) expect([200, 202, 409]).toContain(response.status);
  });

  it("cancels a running job (202), which then ends cancelled; a terminal job is a 409", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, route: "slow" },
      headers: acme,
    });
    let job = created.body;
    for (let index = 0; index < 50 && job.status !== "running"; index += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      job = (await stack.request("GET", `/v1/jobs/${created.body.id}`, { headers: acme })).body;
    }
    expect(job.status).toBe("running");
    const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: acme });
    expect(cancel.status).toBe(202);
    const ended = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=5`, { headers: acme });
    expect(ended.body.status).toBe("cancelled");
    const again = await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers: acme });
    expect(again.status).toBe(409);
    expect(again.body.error.type).toBe("conflict_error");
    // OpenAI's SDKs retry a 409 unless told not to; asking again cannot help.
    expect(again.headers.get("x-should-retry")).toBe("false");
  });
});

describe("queued jobs", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config: { ...config, tenants: undefined },
      withoutWorker: true,
    });
  });
  afterAll(() => stack?.close());

  it("cancels a queued job at once (200) and keeps it visible as cancelled", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: hello });
    const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`);
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({ id: created.body.id, status: "cancelled" });
    const fetched = await stack.request("GET", `/v1/jobs/${created.body.id}`);
    expect(fetched.body.status).toBe("cancelled");
    expect((await stack.request("DELETE", `/v1/jobs/${created.body.id}`)).status).toBe(409);
  });

  it("answers a cancel whose remove Redis did not answer with 503, and leaves the job to a retry", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: hello });
    // The remove timed out (Redis stalled): it may still run once Redis answers, so the cancelled
    // record must stay and the client be told to retry; not "running" with the record deleted
    // (a job removed later would then be gone without a trace).
    const remove = vi
      .spyOn(Queue.prototype, "remove")
      .mockRejectedValueOnce(Object.assign(new Error("Command timed out"), { name: "Error" }));
    try {
      const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`);
      expect(cancel.status).toBe(503);
      expect(cancel.body.error.type).toBe("service_unavailable_error");
      expect(cancel.headers.get("retry-after")).toMatch(/^\d+$/);
    } finally {
      remove.mockRestore();
    }
    // The remove did not run here: the job is still queued, and the client's retry cancels it.
    expect((await stack.request("GET", `/v1/jobs/${created.body.id}`)).body.status).toBe("queued");
    const retried = await stack.request("DELETE", `/v1/jobs/${created.body.id}`);
    expect(retried.status).toBe(200);
    expect(retried.body.status).toBe("cancelled");
  });

  it("runs urgent jobs first and wakes ?wait when a job ends", async () => {
    const low = await stack.request("POST", "/v1/jobs", { body: { ...hello, priority: 9 } });
    const urgent = await stack.request("POST", "/v1/jobs", { body: { ...hello, priority: 1 } });
    const waiting = stack.request("GET", `/v1/jobs/${low.body.id}?wait=20`);
    const queued = await stack.request("GET", `/v1/jobs/${urgent.body.id}`);
    expect(queued.body.status).toBe("queued");
    expect(queued.body.started_at).toBeNull();
    await stack.startWorker(1);
    const lowDone = await waiting;
    expect(lowDone.body.status).toBe("succeeded");
    const urgentDone = await stack.request("GET", `/v1/jobs/${urgent.body.id}?wait=5`);
    expect(urgentDone.body.status).toBe("succeeded");
    expect(urgentDone.body.finished_at).toBeLessThanOrEqual(lowDone.body.finished_at);
    const [urgentJob, lowJob] = await Promise.all(
      [urgent.body.id, low.body.id].map((id) =>
        stack.app.app.inject({ method: "GET", url: `/v1/jobs/${id}` }),
      ),
    );
    expect(urgentJob?.statusCode).toBe(200);
    expect(lowJob?.statusCode).toBe(200);
  });
});

describe("cancelling a job between runs", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config: {
        providers: { limited: { type: "simulated", simulate: { rate_limit_rate: 1, retry_after_s: 2 } } },
        models: { slow: { provider: "limited" } },
        routes: { default: { chain: [{ model: "slow", max_retries: 3 }] } },
      },
    });
  });
  afterAll(() => stack?.close());

  it("ends cancelled when it starts again after a cancel request reached no worker", async () => {
    const created = await stack.request("POST", "/v1/jobs", { body: hello });
    // Wait until the job is parked in the delayed set by its 429 (Retry-After 2 s).
    let job = created.body;
    for (let index = 0; index < 40 && job.attempts.length === 0; index += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      job = (await stack.request("GET", `/v1/jobs/${created.body.id}`)).body;
    }
    expect(job.attempts[0]).toMatchObject({ reason: "rate_limited" });
    // As the API leaves it when the job was running at the DELETE but no worker held it after.
    const keys = createKeys(stack.config.settings.CASCADE_REDIS_PREFIX);
    await stack.redis.set(keys.cancelRequest(created.body.id), "1", "EX", 60);
    const ended = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`);
    expect(ended.body).toMatchObject({ status: "cancelled", error: { type: "cancelled" } });
    expect(ended.body.attempts).toHaveLength(1);
  });
});
