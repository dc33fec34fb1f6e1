/**
 * A body sent with `Content-Encoding: gzip` (or any coding but identity) was read as it came, and
 * answered "body is not valid JSON". The API decodes no body: such a request is a 415 naming the
 * header, on every route that reads a body (JSON and the multipart upload alike), and an upload
 * refused so stores nothing. Real HTTP against the API.
 */
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const KEY = "encoding-key";
const auth = { authorization: `Bearer ${KEY}` };
let stack: Stack;

beforeAll(async () => {
  stack = await startTenantsApi(inject("redisUrl"), { acme: KEY });
});
afterAll(() => stack?.close());

const job = JSON.stringify({ request: { messages: [{ role: "user", content: "Hi" }] } });
const chat = JSON.stringify({ model: "m", messages: [{ role: "user", content: "Hi" }] });
const batch = JSON.stringify({
  input_file_id: "file-x",
  endpoint: "/v1/chat/completions",
  completion_window: "24h",
});

async function send(path: string, body: Buffer | string, headers: Record<string, string>) {
  const response = await fetch(`${stack.url}${path}`, {
    method: "POST",
    headers: { ...auth, ...headers },
    body,
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
  return { status: response.status, body: (await response.json()) as any };
}

function expectRefused(response: { status: number; body: unknown }, coding: string) {
  expect(response.status).toBe(415);
  expect(response.body).toEqual({
    error: {
      type: "unsupported_media_type_error",
      message: `content-encoding "${coding}" is not supported; send the body unencoded (identity)`,
      code: null,
      param: "content-encoding",
    },
  });
}

describe("Content-Encoding on request bodies", () => {
  it.each([
    ["/v1/jobs", job],
    ["/v1/chat/completions", chat],
    ["/v1/batches", batch],
  ])("POST %s with a gzip body: 415 naming content-encoding", async (path, text) => {
    const response = await send(path, gzipSync(text), {
      "content-type": "application/json",
      "content-encoding": "gzip",
    });
    expectRefused(response, "gzip");
  });

  it.each(["br", "gzip, identity", "x"])(
    "refuses the coding %s, sent with a plain body too",
    async (coding) => {
      expectRefused(
        await send("/v1/jobs", job, { "content-type": "application/json", "content-encoding": coding }),
        coding,
      );
    },
  );

  it("takes identity (any case), as no encoding", async () => {
    for (const coding of ["identity", "IDENTITY"]) {
      const response = await send("/v1/jobs", job, {
        "content-type": "application/json",
        "content-encoding": coding,
      });
      expect(response.status).toBe(202);
    }
  });

  it("refuses a gzip multipart upload, and stores nothing", async () => {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new Blob(['{"custom_id":"a"}\n']), "one.jsonl");
    const encoded = new Request("http://x/", { method: "POST", body: form });
    const raw = Buffer.from(await encoded.arrayBuffer());
    const response = await send("/v1/files", gzipSync(raw), {
      "content-type": encoded.headers.get("content-type") ?? "",
      "content-encoding": "gzip",
    });
    expectRefused(response, "gzip");
    const listed = await stack.request("GET", "/v1/files", { headers: auth });
    expect(listed.body.data).toEqual([]);
  });
});
