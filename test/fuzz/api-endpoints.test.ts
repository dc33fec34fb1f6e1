/**
 * Property-based fuzzing of every API endpoint (jobs, job events, files, batches, webhook
 * deliveries, providers, usage, metrics, probes, docs, and paths that are none of these):
 * generated bodies, headers, query strings and ids, sent over real HTTP to the API built in
 * this process over real Redis, with a worker running what gets accepted. Whatever is sent:
 * never a 5xx, errors in the contract's shape, the process stays up, and anything accepted can be
 * read back and comes to an end (fuzz-executor.ts, settle.ts). Each property also checks that
 * its requests got past validation often enough to have exercised what lies behind it.
 * `pnpm fuzz` runs the same properties for longer (docs/testing.md).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type FuzzRequest,
  fileAndBatchRequests,
  jobRequests,
  operationAndUnknownRequests,
  tenantOperationRequests,
} from "./arbitraries/endpoint-requests.js";
import { exchange, expectStillServing } from "./fuzz-executor.js";
import { fuzzParameters, fuzzTimeoutMs, REPLAYING_ONE_CASE } from "./fuzz-settings.js";
import { type FuzzStack, rememberDeliveries, startFuzzStack } from "./fuzz-stack.js";
import { unsettled } from "./settle.js";

describe("API fuzzing: any request, no 5xx, nothing accepted is lost", () => {
  let fuzz: FuzzStack;
  beforeAll(async () => {
    fuzz = await startFuzzStack(inject("redisUrl"));
  });
  afterAll(() => fuzz?.close());

  const check = (requests: fc.Arbitrary<FuzzRequest>, runs: number) =>
    fc.assert(
      fc.asyncProperty(requests, async (request) => {
        await exchange(fuzz, request);
        await expectStillServing(fuzz);
      }),
      fuzzParameters(runs),
    );

  /** Each `METHOD /template STATUS` prefix was answered at least once. */
  const expectReached = (...prefixes: string[]) => {
    if (REPLAYING_ONE_CASE) return;
    const missed = prefixes.filter((prefix) => fuzz.answered(prefix) === 0);
    expect(missed, `never reached; answers were ${JSON.stringify([...fuzz.outcomes])}`).toEqual([]);
  };

  it(
    "jobs: POST /v1/jobs, GET and DELETE /v1/jobs/:id, GET /v1/jobs/:id/events",
    async () => {
      await check(jobRequests(fuzz.webhookUrls), 400);
      expectReached(
        "POST /v1/jobs 202",
        "POST /v1/jobs 400",
        "GET /v1/jobs/:id 200",
        "GET /v1/jobs/:id/events 200",
      );
      expect(await unsettled(fuzz, "job", 20_000), "accepted jobs that never ended").toEqual([]);
    },
    fuzzTimeoutMs(40_000),
  );

  it(
    "files and batches: multipart uploads, content, lists, batches and their cancel",
    async () => {
      await check(fileAndBatchRequests, 400);
      // Few drawn batches pass every check (a caller, content type, body, and an uploaded file
      // that is a valid batch input): 4–8 of 400 runs as a rule, none in one CI run. Draw more,
      // a bounded number of times, until one is created.
      for (let more = 0; more < 3 && fuzz.answered("POST /v1/batches 200") === 0; more += 1) {
        await check(fileAndBatchRequests, 200);
      }
      expectReached(
        "POST /v1/files 200",
        "POST /v1/files 400",
        "POST /v1/batches 200",
        "POST /v1/batches 400",
      );
      expect(await unsettled(fuzz, "batch", 20_000), "created batches that never ended").toEqual([]);
    },
    fuzzTimeoutMs(40_000),
  );

  it(
    "webhook deliveries (with real dead deliveries), providers and the breaker override, usage",
    async () => {
      // Jobs with webhooks to the failing sink, so dead deliveries exist for the retry route.
      const acme = fuzz.authorization({ kind: "tenant", tenant: "acme" });
      for (let index = 0; index < 3; index++) {
        await fuzz.send({
          method: "POST",
          path: "/v1/jobs",
          headers: { ...acme, "content-type": "application/json" },
          body: JSON.stringify({
            request: { messages: [{ role: "user", content: "hello" }] },
            route: "strict",
            webhook: { url: fuzz.webhookUrls[0] },
          }),
        });
      }
      await fuzz.sink.waitForRequests(3, 10_000);
      await rememberDeliveries(fuzz);
      await check(tenantOperationRequests, 300);
      expectReached(
        "POST /v1/webhook-deliveries/:id/retry 202",
        "GET /v1/webhook-deliveries 200",
        "GET /v1/usage 200",
      );
    },
    fuzzTimeoutMs(30_000),
  );

  it(
    "operations, docs and unknown paths with any method",
    async () => {
      await check(operationAndUnknownRequests, 300);
      expectReached("GET /healthz 200", "GET /docs/json 200", "GET /metrics 200");
    },
    fuzzTimeoutMs(30_000),
  );
});
