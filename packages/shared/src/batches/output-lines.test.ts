import { describe, expect, it } from "vitest";
import type { Attempt, JobOutcome } from "../schemas/job.js";
import { failedLine, invalidLine, lineEndOf } from "./output-lines.js";

const batch = { id: "batch_1", custom_id: "line-1", line: 0 };

function failed(attempts: Attempt[]): JobOutcome {
  return {
    status: "failed",
    cost_usd: 0,
    attempts,
    error: { type: "all_models_failed", message: "every model in the chain failed" },
    finished_at: 1764000000,
  };
}

const skipped = (reason: Attempt["reason"]): Attempt => ({
  model: "m",
  provider: "p",
  outcome: "skipped",
  reason,
  duration_ms: 0,
  started_at: 1764000000,
});

describe("batch error lines (OpenAI's error-file shape)", () => {
  it("names the answer the request got, with error null, as the gateway would answer it", () => {
    const cases: Array<[Attempt[], number, string, string]> = [
      [[{ ...skipped("server_error"), outcome: "error" }], 502, "api_error", "all_models_failed"],
      [[skipped("over_budget")], 429, "insufficient_quota", "over_budget"],
      [[skipped("rate_limited")], 429, "rate_limit_error", "rate_limited"],
      [[skipped("price_ceiling")], 400, "invalid_request_error", "price_ceiling"],
    ];
    for (const [attempts, status, type, code] of cases) {
      const line = JSON.parse(lineEndOf("job_1", batch, failed(attempts)).json);
      expect(line).toMatchObject({
        custom_id: "line-1",
        response: { status_code: status, request_id: "job_1", body: { error: { type, code, param: null } } },
        error: null,
      });
    }
  });

  it("gives a line that got no answer response null and error {code, message}, as an expired one", () => {
    expect(JSON.parse(failedLine(batch, "internal_error", "the job failed").json)).toEqual({
      id: "batch_req_1-0",
      custom_id: "line-1",
      response: null,
      error: { code: "internal_error", message: "the job failed" },
    });
  });

  it("answers a line found invalid at its enqueue 400, as OpenAI would have", () => {
    expect(JSON.parse(invalidLine("job_1", batch, "messages: required").json)).toMatchObject({
      response: {
        status_code: 400,
        body: { error: { type: "invalid_request_error", code: "invalid_request" } },
      },
      error: null,
    });
  });

  it("answers a line whose job data the worker found invalid 400, not 502", () => {
    const outcome: JobOutcome = {
      status: "failed",
      cost_usd: 0,
      attempts: [],
      error: { type: "invalid_job", message: "request.messages: required" },
      finished_at: 1764000000,
    };
    expect(JSON.parse(lineEndOf("job_1", batch, outcome).json)).toMatchObject({
      response: { status_code: 400, body: { error: { type: "invalid_request_error" } } },
      error: null,
    });
  });
});
