/**
 * 400s of POST /v1/jobs name the field and say what is wrong with it where zod's bare words came
 * through: a metadata key past 64 characters ("metadata.kkk…: Invalid key in record", where too
 * many keys said "metadata holds at most 16 keys"); `stop` with 5 sequences (OpenAI takes at most
 * 4: "request.stop: Invalid input").
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const acme = { authorization: "Bearer key-a" };
const request = { messages: [{ role: "user", content: "Hello" }] };

describe("validation messages of POST /v1/jobs", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startTenantsApi(inject("redisUrl"), { acme: "key-a" });
  });
  afterAll(() => stack?.close());

  it("a metadata key past 64 characters is refused with a message that says so", async () => {
    const key = "k".repeat(65);
    const answer = await stack.request("POST", "/v1/jobs", {
      body: { request, metadata: { [key]: "v" } },
      headers: acme,
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.type).toBe("invalid_request_error");
    // It was "metadata.kkk…k: Invalid key in record".
    expect(answer.body.error.message).toMatch(/64/);
  });

  it("a webhook.url past 2,048 characters is refused, naming the field and the limit", async () => {
    // It was accepted (a 1 MB URL), kept on its delivery for 7 days and listed back; receivers
    // answer such a request 414 or 431 (black-box audit).
    const url = `https://93.184.215.14/${"a".repeat(2_100)}`;
    const answer = await stack.request("POST", "/v1/jobs", {
      body: { request, webhook: { url } },
      headers: acme,
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.param).toBe("webhook.url");
    expect(answer.body.error.message).toMatch(/2048/);
    const fits = `https://93.184.215.14/${"a".repeat(2_000)}`;
    const accepted = await stack.request("POST", "/v1/jobs", {
      body: { request, webhook: { url: fits } },
      headers: acme,
    });
    expect(accepted.status).toBe(202);
  });

  it("tool_choice required with no tools is refused at both doors, naming tool_choice (as OpenAI answers it)", async () => {
    const job = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...request, tool_choice: "required" } },
      headers: acme,
    });
    expect(job.status).toBe(400);
    expect(job.body.error.param).toBe("request.tool_choice");
    expect(job.body.error.message).toMatch(/"required" is only allowed when tools are given/);
    const call = await stack.request("POST", "/v1/chat/completions", {
      body: { ...request, tool_choice: "required" },
      headers: acme,
    });
    expect(call.status).toBe(400);
    expect(call.body.error.param).toBe("tool_choice");
    // auto and none ask nothing impossible: accepted.
    for (const tool_choice of ["auto", "none"]) {
      const accepted = await stack.request("POST", "/v1/jobs", {
        body: { request: { ...request, tool_choice } },
        headers: acme,
      });
      expect(accepted.status).toBe(202);
    }
  });

  it("five stop sequences are refused with a message that gives the limit", async () => {
    const answer = await stack.request("POST", "/v1/jobs", {
      body: { request: { ...request, stop: ["a", "b", "c", "d", "e"] } },
      headers: acme,
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.param).toBe("request.stop");
    // It was "request.stop: Invalid input".
    expect(answer.body.error.message).toMatch(/4/);
  });
});
