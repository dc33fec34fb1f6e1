import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { createColors } from "../colors.js";
import { idempotencyKey, interpretLine, jobBody, scanInput } from "./input.js";
import { newTally, renderBar, renderLine } from "./progress.js";
import { ResultsFile, type StateHeader, SubmitState } from "./state.js";

const directory = mkdtempSync(join(tmpdir(), "cascade-cli-unit-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe("input lines", () => {
  const messages = [{ role: "user", content: "hi" }];

  it("takes Batch lines and plain chat bodies", () => {
    expect(
      interpretLine(
        JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { messages } }),
        1,
      ),
    ).toEqual({ customId: "a", request: { messages } });
    expect(interpretLine(JSON.stringify({ messages, max_tokens: 5 }), 7)).toEqual({
      customId: "7",
      request: { messages, max_tokens: 5 },
    });
    expect(interpretLine(JSON.stringify({ custom_id: 42, body: { messages } }), 1)).toMatchObject({
      customId: "42",
    });
  });

  it("explains what is wrong with anything else", () => {
    const error = (text: string) => (interpretLine(text, 1) as { error: string }).error;
    expect(error("{")).toMatch(/^not valid JSON/);
    expect(error("[1]")).toBe("not a JSON object");
    expect(error(JSON.stringify({ custom_id: "a", url: "/v1/embeddings", body: { messages } }))).toMatch(
      /only \/v1\/chat\/completions/,
    );
    expect(error(JSON.stringify({ body: { messages } }))).toMatch(/needs a custom_id/);
    expect(error(JSON.stringify({ custom_id: "a", body: { prompt: "x" } }))).toMatch(/no messages array/);
    expect(error(JSON.stringify({ prompt: "x" }))).toMatch(/^neither/);
  });

  it("builds the job body and a stable Idempotency-Key that changes with the body", () => {
    const line = { customId: "a", request: { messages, model: "m1" } };
    const body = jobBody(line, 3, { route: "r", model: "m2", webhook: "https://h" });
    expect(body).toEqual({
      request: { messages, model: "m2" },
      route: "r",
      webhook: { url: "https://h" },
      metadata: { input_line: "3", custom_id: "a" },
    });
    const key = idempotencyKey("/in.jsonl", 3, body);
    expect(key).toMatch(/^cascade-cli-[0-9a-f]{64}$/);
    expect(idempotencyKey("/in.jsonl", 3, body)).toBe(key);
    expect(idempotencyKey("/in.jsonl", 4, body)).not.toBe(key);
    expect(idempotencyKey("/in.jsonl", 3, { ...body, route: "other" })).not.toBe(key);
  });

  it("scans a file: blank lines skipped, duplicate ids refused", async () => {
    const file = join(directory, "scan.jsonl");
    writeFileSync(
      file,
      `${JSON.stringify({ messages })}\n\n${JSON.stringify({ custom_id: "1", body: { messages } })}\n`,
    );
    const scan = await scanInput(file);
    expect(scan.entries).toEqual([{ line: 1, customId: "1" }]);
    expect(scan.errors).toEqual([
      { line: 3, message: 'custom_id "1" is also on line 1; ids must be unique' },
    ]);
  });
});

describe("resume state", () => {
  const header = (digest: string): StateHeader => ({
    v: 1,
    kind: "cascade-submit-state",
    input: "/in.jsonl",
    input_sha256: digest,
    requests: 2,
    url: "http://x",
    route: null,
    model: null,
    webhook: null,
    created_at: "now",
  });

  it("records submissions, survives a torn last line, and refuses other input", () => {
    const out = join(directory, "state-out.jsonl");
    const statePath = `${out}.state.jsonl`;
    const state = SubmitState.open(statePath, out, header("aaa"));
    state.recordSubmitted(1, "a", "job_1");
    state.close();
    writeFileSync(statePath, `${readFileSync(statePath, "utf8")}{"line":2,"custom_id":"b","job_`, {
      flag: "w",
    });
    const again = SubmitState.open(statePath, out, header("aaa"));
    expect(again.resumed).toBe(true);
    expect([...again.submitted]).toEqual([[1, "job_1"]]);
    again.recordSubmitted(2, "b", "job_2");
    again.close();
    expect([...SubmitState.open(statePath, out, header("aaa")).submitted]).toEqual([
      [1, "job_1"],
      [2, "job_2"],
    ]);
    expect(() => SubmitState.open(statePath, out, header("bbb"))).toThrow(/different input/);
  });

  it("refuses a results file that has content but no state", () => {
    const out = join(directory, "orphan.jsonl");
    writeFileSync(out, "{}\n");
    expect(() => SubmitState.open(`${out}.state.jsonl`, out, header("aaa"))).toThrow(/no .* to resume from/);
  });

  it("reads finished records after cutting a partial last line", async () => {
    const out = join(directory, "partial.jsonl");
    writeFileSync(out, `${JSON.stringify({ custom_id: "a", status: "succeeded" })}\n{"custom_id":"b","sta`);
    const results = new ResultsFile(out);
    expect((await results.readExisting()).map((record) => record.custom_id)).toEqual(["a"]);
    results.append({
      custom_id: "b",
      job_id: "job_b",
      status: "failed",
      model: null,
      cost_usd: 0,
      result: null,
      error: null,
      attempts: [],
    });
    results.close();
    expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(2);
  });
});

describe("progress", () => {
  const tally = { ...newTally(100, 0), succeeded: 30, failed: 10, inFlight: 8, jobs: 40, fellBack: 10 };
  tally.spendUsd = 0.0123;
  tally.finishedThisRun = 40;

  it("shows done, failed, in flight, rate, ETA, fallback rate and spend", () => {
    expect(renderLine(tally, 10_000)).toBe(
      "progress: 40/100 done (30 succeeded, 10 failed), 8 in flight, 4.0 jobs/s, ETA 15s, fallback 25%, spend $0.0123",
    );
    const bar = stripVTControlCharacters(renderBar(tally, 10_000, 120, createColors(true)));
    expect(bar).toMatch(/^█{12}░{18} {2}40\/100 \(40%\) ✓ 30 ✗ 10 · 8 in flight · 4.0 jobs\/s · ETA 15s/);
    expect(bar.length).toBeLessThanOrEqual(120);
  });

  it("drops the bar, then truncates, on narrow terminals", () => {
    const colors = createColors(false);
    expect(renderBar(tally, 10_000, 80, colors)).toMatch(/^40\/100 /);
    expect(renderBar(tally, 10_000, 30, colors).length).toBeLessThan(30);
  });
});
