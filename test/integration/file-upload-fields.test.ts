/**
 * POST /v1/files took multipart fields it does not know (`-F frob=1`) and stored the file: every
 * JSON endpoint refuses unknown fields. Such an upload is a 400 naming the field (message and
 * param), whether it comes before or after the file, and nothing of it stays in Redis. Real HTTP
 * against the API, the store's keys read on the run's Redis.
 */
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const KEY = "upload-fields-key";
const auth = { authorization: `Bearer ${KEY}` };
let stack: Stack;

beforeAll(async () => {
  stack = await startTenantsApi(inject("redisUrl"), { acme: KEY });
});
afterAll(() => stack?.close());

const line = `${JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { messages: [] } })}\n`;

async function upload(parts: Array<[string, string] | "file">) {
  const form = new FormData();
  for (const part of parts) {
    if (part === "file") form.append("file", new Blob([line]), "one.jsonl");
    else form.append(part[0], part[1]);
  }
  const response = await fetch(`${stack.url}/v1/files`, { method: "POST", headers: auth, body: form });
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
  return { status: response.status, body: (await response.json()) as any };
}

/**
 * Every file key under this stack's prefix: metadata, content (committed or not) and indexes. On
 * every master of a cluster (KEYS asks one node).
 */
async function fileKeys(): Promise<string[]> {
  const prefix = stack.config.settings.CASCADE_REDIS_PREFIX;
  const nodes = stack.redis instanceof Cluster ? stack.redis.nodes("master") : [stack.redis];
  const found: string[] = [];
  for (const node of nodes) {
    for (const pattern of [`*${prefix}*:file:*`, `*${prefix}*:file-data:*`, `*${prefix}*:files:*`]) {
      found.push(...(await node.keys(pattern)));
    }
  }
  return found;
}

describe("POST /v1/files fields", () => {
  it.each([
    ["after the file", [["purpose", "batch"], "file", ["frob", "1"]]],
    ["before the file", [["frob", "1"], ["purpose", "batch"], "file"]],
  ] as const)("refuses an unknown field %s with a 400 naming it, storing nothing", async (_, parts) => {
    const response = await upload([...parts]);
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ type: "invalid_request_error", param: "frob" });
    expect(response.body.error.message).toMatch(/unknown field "frob"/);
    expect(await fileKeys()).toEqual([]);
    const listed = await stack.request("GET", "/v1/files", { headers: auth });
    expect(listed.body.data).toEqual([]);
  });

  it.each(["__proto__", "constructor", "toString"])(
    "refuses a field named %s (an object property's name) with a 400 saying which fields it takes",
    async (name) => {
      const response = await upload([["purpose", "batch"], "file", [name, "1"]]);
      expect(response.status).toBe(400);
      expect(response.body.error.type).toBe("invalid_request_error");
      expect(response.body.error.message).toMatch(/send file, purpose and optionally expires_after/);
      expect(await fileKeys()).toEqual([]);
    },
  );

  it("says to send the file as a file part when it comes as a text field", async () => {
    const response = await upload([
      ["purpose", "batch"],
      ["file", line],
    ]);
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ type: "invalid_request_error", param: "file" });
    expect(response.body.error.message).toMatch(/as a file part/);
    expect(await fileKeys()).toEqual([]);
  });

  it("takes the fields it knows: file, purpose and expires_after", async () => {
    const response = await upload([
      ["purpose", "batch"],
      ["expires_after[anchor]", "created_at"],
      ["expires_after[seconds]", "3600"],
      "file",
    ]);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ object: "file", purpose: "batch", filename: "one.jsonl" });
    // The probe above sees a stored file's keys.
    expect(await fileKeys()).toHaveLength(3);
  });
});
