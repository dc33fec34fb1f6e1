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

  it("a body that is not valid UTF-8 is a 400 at both doors, not read with its bytes replaced", async () => {
    // A black-box probe: \xff\xfe, \xc3\x28 and an encoded surrogate became U+FFFD, were sent
    // upstream and charged, answered 202 and 200.
    for (const bad of [
      [0xff, 0xfe],
      [0xc3, 0x28],
      [0xed, 0xa0, 0x80],
    ]) {
      for (const [path, prefix, suffix] of [
        ["/v1/jobs", '{"request":{"messages":[{"role":"user","content":"a', '"}]}}'],
        ["/v1/chat/completions", '{"model":"default","messages":[{"role":"user","content":"a', '"}]}'],
      ] as const) {
        const body = Buffer.concat([Buffer.from(prefix), Buffer.from(bad), Buffer.from(suffix)]);
        const answer = await fetch(`${stack.url}${path}`, {
          method: "POST",
          headers: { ...acme, "content-type": "application/json" },
          body,
        });
        const json = await answer.json();
        expect(answer.status, `${path} ${JSON.stringify(bad)}`).toBe(400);
        expect(json.error.type).toBe("invalid_request_error");
        expect(json.error.message).toMatch(/UTF-8/);
      }
    }
    // U+FFFD sent as UTF-8 is a character like any other.
    const fine = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "a\ufffd" }] } },
      headers: acme,
    });
    expect(fine.status).toBe(202);
  });

  it("an error quoting what was sent is cut to a readable length (a 900 KB key made a 1.8 MB 400)", async () => {
    const key = "x".repeat(900_000);
    const answer = await stack.request("POST", "/v1/jobs", { body: { request, [key]: 1 }, headers: acme });
    expect(answer.status).toBe(400);
    expect(answer.body.error.type).toBe("invalid_request_error");
    expect(JSON.stringify(answer.body).length).toBeLessThan(5_000);
    expect(answer.body.error.message).toMatch(/xxxx/);
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
