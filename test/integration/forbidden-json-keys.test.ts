/**
 * A JSON body holding a key that could set an object's prototype (`__proto__`, or `constructor`
 * holding `prototype`) is valid JSON: Fastify's parser (secure-json-parse) refuses it, and the
 * answer said "body is not valid JSON". It must be a 400 naming the key, on every JSON route.
 * Real HTTP against the API, raw bodies (JSON.stringify never writes a `__proto__` key).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const KEY = "forbidden-keys-key";
let stack: Stack;

beforeAll(async () => {
  stack = await startTenantsApi(inject("redisUrl"), { acme: KEY });
});
afterAll(() => stack?.close());

const send = (path: string, body: string) =>
  stack.request("POST", path, { body, headers: { authorization: `Bearer ${KEY}` } });

const messages = '[{"role":"user","content":"Hi"}]';

describe("JSON bodies with prototype keys", () => {
  it.each([
    ["/v1/jobs", `{"__proto__":{"x":1},"request":{"messages":${messages}}}`, "__proto__"],
    ["/v1/jobs", `{"constructor":{"prototype":{"x":1}},"request":{"messages":${messages}}}`, "constructor"],
    [
      "/v1/jobs",
      `{"request":{"messages":[{"role":"user","content":"Hi","__proto__":{}}]}}`,
      "request.messages[0].__proto__",
    ],
    // The key spelt with escapes is the same key once parsed.
    ["/v1/jobs", `{"\\u005f_proto__":{"x":1},"request":{"messages":${messages}}}`, "__proto__"],
    ["/v1/chat/completions", `{"model":"m","messages":${messages},"__proto__":{"x":1}}`, "__proto__"],
    [
      "/v1/chat/completions",
      `{"model":"m","messages":${messages},"metadata":{"constructor":{"prototype":null}}}`,
      "metadata.constructor",
    ],
    [
      "/v1/batches",
      `{"input_file_id":"file-x","endpoint":"/v1/chat/completions","completion_window":"24h","__proto__":{}}`,
      "__proto__",
    ],
  ])("POST %s %s: a 400 naming %s", async (path, body, param) => {
    const response = await send(path, body);
    expect(response.status).toBe(400);
    expect(response.body).toEqual({
      error: {
        type: "invalid_request_error",
        message: `body: field "${param}" is not allowed (it could change an object's prototype)`,
        code: null,
        param,
      },
    });
  });

  it("still takes a constructor key that holds no prototype, and still refuses invalid JSON as such", async () => {
    const harmless = await send(
      "/v1/jobs",
      `{"metadata":{"constructor":"x"},"request":{"messages":${messages}}}`,
    );
    expect(harmless.status).toBe(202);
    const broken = await send("/v1/jobs", `{"__proto__":{"x":1},"request":`);
    expect(broken.status).toBe(400);
    expect(broken.body.error.message).toMatch(/^body is not valid JSON/);
    expect(broken.body.error.param).toBeNull();
  });
});
