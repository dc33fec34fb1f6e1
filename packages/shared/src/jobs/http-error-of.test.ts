import { describe, expect, it } from "vitest";
import type { Attempt, JobOutcome } from "../schemas/job.js";
import { httpErrorOf } from "./http-error-of.js";

const attempt = (extra: Partial<Attempt>): Attempt => ({
  model: "a",
  provider: "p",
  outcome: "error",
  duration_ms: 1,
  started_at: 1,
  ...extra,
});

/** A call a shutdown stopped after it was sent: an attempt with no reason of its own. */
const stopped = attempt({ message: "the call was stopped: the worker was shutting down" });

const failed = (attempts: Attempt[]): JobOutcome => ({
  status: "failed",
  cost_usd: 0,
  attempts,
  error: { type: "all_models_failed", message: "every model in the chain failed" },
  finished_at: 1,
});

describe("httpErrorOf with a stopped call among the attempts", () => {
  it("answers as the failures alone say: rate limits a 429 with Retry-After", () => {
    const error = httpErrorOf(
      failed([
        stopped,
        attempt({ reason: "rate_limited", retry_after_ms: 4_000 }),
        attempt({ model: "b", reason: "rate_limited", retry_after_ms: 2_000 }),
      ]),
    );
    expect(error).toMatchObject({ status: 429, code: "rate_limited", retryAfterS: 2 });
  });

  it("a spent budget a 429 insufficient_quota, the request's own unfitness a 400", () => {
    expect(
      httpErrorOf(failed([stopped, attempt({ outcome: "skipped", reason: "over_budget" })])),
    ).toMatchObject({
      status: 429,
      type: "insufficient_quota",
    });
    expect(
      httpErrorOf(failed([stopped, attempt({ outcome: "skipped", reason: "context_length" })])),
    ).toMatchObject({ status: 400, code: "context_length_exceeded" });
  });
});
