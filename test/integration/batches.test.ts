import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  batchClient as client,
  expireBatchNow,
  batchFileLines as fileLines,
  uploadBatchInput as upload,
  waitForBatchStatus as waitForStatus,
} from "../support/batch-client.js";
import { type Stack, startStack, uniquePrefix } from "../support/cascade-stack.js";

const config = {
  providers: {
    sim: { type: "simulated", simulate: { latency_ms: 0 } },
    broken: { type: "simulated", simulate: { latency_ms: 0, error_rate: 1 } },
    slow: { type: "simulated", simulate: { latency_ms: 20000 } },
    paced: { type: "simulated", simulate: { latency_ms: 1500 } },
  },
  models: {
    fast: { provider: "sim" },
    failing: { provider: "broken" },
    sluggish: { provider: "slow" },
    steady: { provider: "paced" },
  },
  routes: {
    default: { chain: [{ model: "fast" }] },
    summarize: { chain: [{ model: "failing" }, { model: "fast" }] },
  },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS" },
    globex: { api_keys_env: "GLOBEX_KEYS" },
  },
};
const env = { ACME_KEYS: "acme-key", GLOBEX_KEYS: "globex-key" };

interface InputLine {
  custom_id: string;
  method: string;
  url: string;
  body: Record<string, unknown>;
}

const request = (customId: string, model: string | undefined, text = `Say ${customId}`): InputLine => ({
  custom_id: customId,
  method: "POST",
  url: "/v1/chat/completions",
  body: { ...(model ? { model } : {}), messages: [{ role: "user", content: text }], max_tokens: 16 },
});
const jsonl = (lines: unknown[]) => `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`;

describe("batches (official openai SDK)", () => {
  let stack: Stack;
  let openai: OpenAI;
  beforeAll(async () => {
    stack = await startStack({ redisUrl: inject("redisUrl"), config, env, concurrency: 20 });
    openai = client(stack);
  });
  afterAll(() => stack?.close());

  it("uploads a file, runs a batch to completed, and writes one output line per request", async () => {
    // OpenAI's fields Cascade does not honour ride along in real batch files: accepted, dropped.
    const openAIExtras = {
      store: false,
      metadata: { source: "nightly" },
      logprobs: false,
      service_tier: "auto",
    };
    const lines = Array.from({ length: 30 }, (_, index) => {
      const line = request(`req-${index}`, index % 3 === 0 ? "default" : "fast");
      return index % 5 === 0 ? { ...line, body: { ...line.body, ...openAIExtras } } : line;
    });
    const text = jsonl(lines);
    const file = await upload(openai, text);
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "input.jsonl" });
    expect(file.id).toMatch(/^file-/);
    expect(file.bytes).toBe(Buffer.byteLength(text));
    expect(await openai.files.retrieve(file.id)).toMatchObject({ id: file.id, bytes: file.bytes });
    expect(await (await openai.files.content(file.id)).text()).toBe(text);

    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "nightly" },
    });
    expect(created).toMatchObject({
      object: "batch",
      endpoint: "/v1/chat/completions",
      input_file_id: file.id,
      completion_window: "24h",
      metadata: { job: "nightly" },
      request_counts: { total: 30, completed: 0, failed: 0 },
      output_file_id: null,
      error_file_id: null,
    });
    expect(["validating", "in_progress"]).toContain(created.status);
    expect(created.id).toMatch(/^batch_/);
    expect(created.expires_at).toBe((created.created_at as number) + 24 * 3600);

    const done = await waitForStatus(openai, created.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 30, completed: 30, failed: 0 });
    expect(done.error_file_id).toBeNull();
    for (const field of ["in_progress_at", "finalizing_at", "completed_at"] as const) {
      expect(done[field]).toBeTypeOf("number");
    }
    expect(done.usage?.output_tokens).toBeGreaterThan(0);

    const output = await fileLines(openai, done.output_file_id as string);
    expect(output.map((line) => line.custom_id).sort()).toEqual(lines.map((line) => line.custom_id).sort());
    for (const line of output) {
      expect(line.id).toMatch(/^batch_req_/);
      expect(line.error).toBeNull();
      expect(line.response.status_code).toBe(200);
      expect(line.response.body).toMatchObject({ object: "chat.completion", model: "fast" });
      expect(line.response.body.choices[0].message.content).toContain(`Say ${line.custom_id}`);
      // request_id is the line's job: an ordinary Cascade job with its attempts.
      const job = await stack.request("GET", `/v1/jobs/${line.response.request_id}`, {
        headers: { authorization: "Bearer acme-key" },
      });
      expect(job.body).toMatchObject({ status: "succeeded", priority: 7 });
    }
    const outputFile = await openai.files.retrieve(done.output_file_id as string);
    expect(outputFile).toMatchObject({ purpose: "batch_output", filename: `${created.id}_output.jsonl` });
  });

  it("writes failed lines to the error file with their custom_id, and counts them", async () => {
    const file = await upload(
      openai,
      jsonl([request("ok-1", "fast"), request("bad-1", "failing"), request("rescued", "summarize")]),
    );
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await waitForStatus(openai, created.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    const output = await fileLines(openai, done.output_file_id as string);
    expect(output.map((line) => line.custom_id).sort()).toEqual(["ok-1", "rescued"]);
    const errors = await fileLines(openai, done.error_file_id as string);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      custom_id: "bad-1",
      response: { status_code: 502, body: { error: { type: "api_error", code: "all_models_failed" } } },
      // As OpenAI's: `error` is for a request that got no answer; this one got a 502.
      error: null,
    });
    expect(errors[0].response.body.error.message).toContain("failing");
  });

  it("rejects an invalid file at batches.create with a 400 naming the line and field", async () => {
    const cases: Array<{ lines: string | Buffer; expected: RegExp; line: number; param?: string }> = [
      {
        // Bytes that are not UTF-8 (they were read as U+FFFD, sent upstream and charged so).
        lines: Buffer.concat([
          Buffer.from(`${JSON.stringify(request("a", "fast"))}\n`),
          Buffer.from(JSON.stringify(request("b", "fast", "Say \u0000")).replace("\\u0000", "\u0000")).map(
            (byte) => (byte === 0 ? 0xff : byte),
          ),
          Buffer.from("\n"),
        ]),
        expected: /line 2: not valid UTF-8/,
        line: 2,
      },
      {
        lines: `${JSON.stringify(request("a", "fast"))}\n{not json\n`,
        expected: /line 2: not valid JSON/,
        line: 2,
      },
      {
        lines: jsonl([request("a", "fast"), { method: "POST", url: "/v1/chat/completions", body: {} }]),
        expected: /line 2: custom_id is required/,
        line: 2,
      },
      {
        lines: jsonl([request("a", "fast"), request("b", "fast"), request("a", "fast")]),
        expected: /line 3: custom_id "a" is already used on line 1/,
        line: 3,
      },
      {
        lines: jsonl([{ ...request("a", "fast"), url: "/v1/embeddings" }]),
        expected: /line 1: url must be "\/v1\/chat\/completions"/,
        line: 1,
      },
      {
        lines: jsonl([{ ...request("a", "fast"), method: "GET" }]),
        expected: /line 1: method must be "POST"/,
        line: 1,
      },
      {
        lines: jsonl([
          request("a", "fast"),
          { ...request("b", "fast"), body: { model: "fast", messages: [] } },
        ]),
        expected: /line 2: body\.messages: messages must hold at least one message/,
        line: 2,
      },
      {
        lines: jsonl([
          request("a", "fast"),
          { ...request("b", "fast"), body: { ...request("b", "fast").body, colour: 1 } },
        ]),
        expected: /line 2: body\.colour: unknown key/,
        line: 2,
        param: "body.colour",
      },
      {
        // As OpenAI refuses it: top_logprobs asks for nothing without logprobs: true.
        lines: jsonl([
          request("a", "fast"),
          { ...request("b", "fast"), body: { ...request("b", "fast").body, top_logprobs: 2 } },
        ]),
        expected: /line 2: body\.top_logprobs: top_logprobs is only allowed when logprobs is true/,
        line: 2,
        param: "body.top_logprobs",
      },
      {
        lines: jsonl([request("a", "gpt-nonexistent")]),
        expected: /line 1: body\.model: "gpt-nonexistent" is neither a configured model nor a route/,
        line: 1,
      },
      {
        lines: `${JSON.stringify(request("a", "fast"))}\n\n${JSON.stringify(request("b", "fast"))}\n`,
        expected: /line 2: empty line/,
        line: 2,
      },
      { lines: "\n", expected: /holds no requests/, line: 0 },
    ];
    for (const testCase of cases) {
      const file = await upload(openai, testCase.lines);
      const error = await openai.batches
        .create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(error, testCase.expected.source).toBeInstanceOf(OpenAI.BadRequestError);
      const apiError = error as InstanceType<typeof OpenAI.BadRequestError>;
      expect(apiError.message).toMatch(testCase.expected);
      const body = apiError.error as { param: string; line: number | null; errors: { data: unknown[] } };
      expect(body.param).toBe("input_file_id");
      expect(body.line).toBe(testCase.line || null);
      expect(body.errors.data.length).toBeGreaterThan(0);
      if (testCase.param) expect(body.errors.data[0]).toMatchObject({ param: testCase.param });
    }
    // Nothing was created by the rejected files.
    const page = await client(stack, "acme-key").batches.list({ limit: 100 });
    expect(page.data.every((batch) => batch.status !== "validating")).toBe(true);

    const missing = await openai.batches
      .create({ input_file_id: "file-nope", endpoint: "/v1/chat/completions", completion_window: "24h" })
      .catch((caught: unknown) => caught);
    expect(missing).toBeInstanceOf(OpenAI.BadRequestError);
    expect((missing as Error).message).toMatch(/no file with id file-nope/);
    const wrongEndpoint = await openai.batches
      .create({ input_file_id: "file-nope", endpoint: "/v1/embeddings", completion_window: "24h" })
      .catch((caught: unknown) => caught);
    expect((wrongEndpoint as Error).message).toMatch(/endpoint must be "\/v1\/chat\/completions"/);
  });

  it("cancels a batch: queued lines are removed, running ones finish into the output (as at OpenAI)", async () => {
    const lines = Array.from({ length: 60 }, (_, index) => request(`steady-${index}`, "steady"));
    const file = await upload(openai, jsonl(lines));
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // Wait until some lines are running (20 at a time) and the rest are queued.
    await waitForStatus(openai, created.id, ["in_progress"]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const cancelling = await openai.batches.cancel(created.id);
    expect(["cancelling", "cancelled"]).toContain(cancelling.status);
    expect(cancelling.cancelling_at).toBeTypeOf("number");
    const cancelled = await waitForStatus(openai, created.id, ["cancelled"], 15_000);
    expect(cancelled.cancelled_at).toBeTypeOf("number");
    // Cancelling it again: a 409 OpenAI's SDKs do not retry (one call, no retry of their own).
    const again = await stack.request("POST", `/v1/batches/${created.id}/cancel`, {
      headers: { authorization: "Bearer acme-key" },
    });
    expect(again.status).toBe(409);
    expect(again.headers.get("x-should-retry")).toBe("false");
    // The calls under way when it was cancelled were paid for: they finish, and their answers are
    // in the output. Cancelled requests appear in neither file (as at OpenAI).
    const { completed, failed } = cancelled.request_counts ?? { completed: 0, failed: 0 };
    expect(completed).toBeGreaterThan(0);
    expect(completed).toBeLessThan(60);
    expect(failed).toBe(0);
    const output = await fileLines(openai, cancelled.output_file_id as string);
    expect(output).toHaveLength(completed);
    for (const line of output) expect(line.response.status_code).toBe(200);
    expect(cancelled.error_file_id).toBeNull();
    // Never finalized, as at OpenAI: a cancelled batch has no finalizing_at.
    expect(cancelled.finalizing_at ?? null).toBeNull();
    const conflict = await openai.batches.cancel(created.id).catch((caught: unknown) => caught);
    expect(conflict).toBeInstanceOf(OpenAI.ConflictError);
  });

  it("lists batches newest first with limit/after, and files", async () => {
    const ids: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const file = await upload(openai, jsonl([request(`list-${index}`, "fast")]));
      const batch = await openai.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      ids.push(batch.id);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const first = await openai.batches.list({ limit: 2 });
    expect(first.data.map((batch) => batch.id)).toEqual([ids[2], ids[1]]);
    expect(first.has_more).toBe(true);
    const second = await openai.batches.list({ limit: 2, after: ids[1] });
    expect(second.data[0]?.id).toBe(ids[0]);
    const all: string[] = [];
    for await (const batch of openai.batches.list({ limit: 2 })) all.push(batch.id);
    expect(all.slice(0, 3)).toEqual([ids[2], ids[1], ids[0]]);

    const files = await openai.files.list({ purpose: "batch" });
    expect(files.data.length).toBeGreaterThan(3);
    expect(files.data.every((file) => file.purpose === "batch")).toBe(true);
  });

  it("scopes files and batches to their tenant: another tenant gets 404", async () => {
    const file = await upload(openai, jsonl([request("mine", "fast")]));
    const batch = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const other = client(stack, "globex-key");
    for (const attempt of [
      () => other.batches.retrieve(batch.id),
      () => other.batches.cancel(batch.id),
      () => other.files.retrieve(file.id),
      () => other.files.content(file.id),
      () => other.files.delete(file.id),
    ]) {
      await expect(attempt()).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    }
    const theirs = await other.batches
      .create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })
      .catch((caught: unknown) => caught);
    expect(theirs).toBeInstanceOf(OpenAI.BadRequestError);
    expect((await other.batches.list()).data.map((each) => each.id)).not.toContain(batch.id);
    await expect(client(stack, "nobody").batches.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    // Deleting the input does not stop the batch (it runs from its own copy).
    expect(await openai.files.delete(file.id)).toEqual({ id: file.id, object: "file", deleted: true });
    await expect(openai.files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await waitForStatus(openai, batch.id, ["completed"])).request_counts.completed).toBe(1);
  });

  it("refuses uploads that are not multipart, lack a purpose or have another purpose", async () => {
    const json = await stack.request("POST", "/v1/files", {
      body: { purpose: "batch" },
      headers: { authorization: "Bearer acme-key" },
    });
    expect(json.status).toBe(415);
    const form = new FormData();
    form.append("file", new Blob(["{}\n"]), "x.jsonl");
    form.append("purpose", "fine-tune");
    const response = await fetch(`${stack.url}/v1/files`, {
      method: "POST",
      headers: { authorization: "Bearer acme-key" },
      body: form,
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { param: string } }).error.param).toBe("purpose");
  });
});

describe("batches: durability", () => {
  it("resumes an enqueue when the API stops half-way: every accepted line runs once", async () => {
    const prefix = uniquePrefix("batch-resume");
    const shared = { redisUrl: inject("redisUrl"), config, env: { ...env, CASCADE_REDIS_PREFIX: prefix } };
    const apiOnly = await startStack({ ...shared, withoutWorker: true });
    const lines = Array.from({ length: 20_000 }, (_, index) => request(`r-${index}`, "fast"));
    const openai = client(apiOnly);
    const file = await upload(openai, jsonl(lines));
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // The API goes away right after accepting: its enqueue stops at the next chunk.
    await apiOnly.close();
    const other = await startStack({ ...shared, concurrency: 100, batches: { sweepIntervalMs: 200 } });
    try {
      const viaOther = client(other);
      const stopped = await viaOther.batches.retrieve(created.id);
      expect(stopped.status).toBe("in_progress");
      const cursor = Number(await other.redis.hget(`{${prefix}}:batch:${created.id}`, "cursor"));
      expect(cursor).toBeLessThan(20_000);
      const done = await waitForStatus(viaOther, created.id, ["completed"], 60_000);
      expect(done.request_counts).toEqual({ total: 20_000, completed: 20_000, failed: 0 });
      const output = await fileLines(viaOther, done.output_file_id as string);
      expect(new Set(output.map((line) => line.custom_id)).size).toBe(20_000);
    } finally {
      await other.close();
    }
  }, 90_000);

  it("expires a batch past its window: unfinished lines get batch_expired errors", async () => {
    const stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env,
      concurrency: 5,
      batches: { sweepIntervalMs: 100_000 },
    });
    try {
      const openai = client(stack);
      const lines = [
        request("quick", "fast"),
        ...Array.from({ length: 10 }, (_, index) => request(`late-${index}`, "sluggish")),
      ];
      const file = await upload(openai, jsonl(lines));
      const created = await openai.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      await waitForStatus(openai, created.id, ["in_progress"]);
      const deadline = Date.now() + 5000;
      while ((await openai.batches.retrieve(created.id)).request_counts?.completed !== 1) {
        if (Date.now() > deadline) throw new Error("the quick line did not finish");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Pretend 24 h went by.
      await expireBatchNow(stack, created.id);
      const expired = await waitForStatus(openai, created.id, ["expired"], 10_000);
      expect(expired.expired_at).toBeTypeOf("number");
      expect(expired.request_counts).toEqual({ total: 11, completed: 1, failed: 10 });
      const errors = await fileLines(openai, expired.error_file_id as string);
      expect(errors.map((line) => line.custom_id).sort()).toEqual(
        lines
          .slice(1)
          .map((line) => line.custom_id)
          .sort(),
      );
      for (const line of errors)
        expect(line).toMatchObject({ response: null, error: { code: "batch_expired" } });
      expect((await fileLines(openai, expired.output_file_id as string))[0].custom_id).toBe("quick");
    } finally {
      await stack.close();
    }
  });

  it("records a line whose job was cancelled on its own (DELETE /v1/jobs/:id) as failed, at once", async () => {
    // No sweeper pass runs in this test: the DELETE itself records the line.
    const stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env,
      withoutWorker: true,
      batches: { sweepIntervalMs: 100_000, idleMs: 100_000 },
    });
    try {
      const openai = client(stack);
      const file = await upload(openai, jsonl([request("keep", "fast"), request("drop", "fast")]));
      const created = await openai.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      await waitForStatus(openai, created.id, ["in_progress"]);
      const jobId = `job_${created.id.replace(/^batch_/, "")}-2`;
      const deadline = Date.now() + 5000;
      let deleted = await stack.request("DELETE", `/v1/jobs/${jobId}`, {
        headers: { authorization: "Bearer acme-key" },
      });
      while (deleted.status === 404 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        deleted = await stack.request("DELETE", `/v1/jobs/${jobId}`, {
          headers: { authorization: "Bearer acme-key" },
        });
      }
      expect(deleted.status).toBe(200);
      const counted = (await openai.batches.retrieve(created.id)).request_counts;
      expect(counted).toEqual({ total: 2, completed: 0, failed: 1 });
      await stack.startWorker();
      const done = await waitForStatus(openai, created.id, ["completed"]);
      expect(done.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
      const errors = await fileLines(openai, done.error_file_id as string);
      expect(errors[0]).toMatchObject({ custom_id: "drop", error: { code: "cancelled" } });
    } finally {
      await stack.close();
    }
  });
});
