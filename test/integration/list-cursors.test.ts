/**
 * An `after` cursor no id could be (`file-nope`) restarted GET /v1/files and GET /v1/batches from
 * their first page (a client paging on would see the same items again, or loop), where GET
 * /v1/webhook-deliveries answers a 400 naming `after`. Both answer that 400 now. An id of the
 * right shape is a position in the list's order, as before: a deleted file's id pages on (list,
 * delete each, list on), and another tenant's id shows only the tenant's own items. Real HTTP.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startTenantsApi } from "../support/cascade-stack.js";

const acme = { authorization: "Bearer acme-cursor-key" };
const globex = { authorization: "Bearer globex-cursor-key" };
let stack: Stack;

beforeAll(async () => {
  stack = await startTenantsApi(inject("redisUrl"), { acme: "acme-cursor-key", globex: "globex-cursor-key" });
});
afterAll(() => stack?.close());

const line = `${JSON.stringify({
  custom_id: "a",
  method: "POST",
  url: "/v1/chat/completions",
  body: { model: "m", messages: [{ role: "user", content: "Hi" }] },
})}\n`;

async function uploadFile(headers: Record<string, string>): Promise<string> {
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([line]), "input.jsonl");
  const response = await fetch(`${stack.url}/v1/files`, { method: "POST", headers, body: form });
  expect(response.status).toBe(200);
  return ((await response.json()) as { id: string }).id;
}

async function createBatch(headers: Record<string, string>): Promise<string> {
  const input = await uploadFile(headers);
  const response = await stack.request("POST", "/v1/batches", {
    headers,
    body: { input_file_id: input, endpoint: "/v1/chat/completions", completion_window: "24h" },
  });
  expect(response.status).toBe(200);
  return response.body.id;
}

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
function expectUnknownCursor(response: { status: number; body: any }, kind: string, id: string) {
  expect(response.status).toBe(400);
  expect(response.body).toEqual({
    error: {
      type: "invalid_request_error",
      message: `after: no ${kind} with id ${id}`,
      code: null,
      param: "after",
    },
  });
}

describe("list cursors", () => {
  let acmeBatches: string[];
  let globexBatch: string;
  beforeAll(async () => {
    // Two batches of acme's (four files: two inputs, two more uploads), one of globex's.
    acmeBatches = [await createBatch(acme), await createBatch(acme)];
    await uploadFile(acme);
    await uploadFile(acme);
    globexBatch = await createBatch(globex);
  });

  it("GET /v1/files: a cursor no file id could be is a 400 naming after", async () => {
    expectUnknownCursor(
      await stack.request("GET", "/v1/files?after=file-nope&limit=1", { headers: acme }),
      "file",
      "file-nope",
    );
    expectUnknownCursor(
      await stack.request("GET", `/v1/files?after=${acmeBatches[0]}`, { headers: acme }),
      "file",
      acmeBatches[0] as string,
    );
  });

  it("GET /v1/files: another tenant's file id is a position only: the page holds the tenant's own files", async () => {
    const theirs = (await stack.request("GET", "/v1/files", { headers: globex })).body.data.map(
      (file: { id: string }) => file.id,
    );
    const page = await stack.request("GET", `/v1/files?after=${theirs[0]}`, { headers: acme });
    expect(page.status).toBe(200);
    for (const file of page.body.data) expect(theirs).not.toContain(file.id);
  });

  it("GET /v1/files: a deleted file's id still pages on (list, delete each, list on)", async () => {
    const all = (await stack.request("GET", "/v1/files", { headers: acme })).body.data.map(
      (file: { id: string }) => file.id,
    );
    const extra = [await uploadFile(acme), await uploadFile(acme), await uploadFile(acme)];
    const first = await stack.request("GET", "/v1/files?limit=2", { headers: acme });
    expect(first.body.data.map((file: { id: string }) => file.id)).toEqual([extra[2], extra[1]]);
    expect(first.body.has_more).toBe(true);
    for (const id of [extra[2], extra[1]])
      expect((await stack.request("DELETE", `/v1/files/${id}`, { headers: acme })).status).toBe(200);
    const next = await stack.request("GET", `/v1/files?limit=2&after=${extra[1]}`, { headers: acme });
    expect(next.status).toBe(200);
    expect(next.body.data.map((file: { id: string }) => file.id)).toEqual([extra[0], all[0]]);
    await stack.request("DELETE", `/v1/files/${extra[0]}`, { headers: acme });
  });

  it("GET /v1/files: a real cursor pages on", async () => {
    const all = (await stack.request("GET", "/v1/files", { headers: acme })).body.data.map(
      (file: { id: string }) => file.id,
    );
    expect(all).toHaveLength(4);
    const next = await stack.request("GET", `/v1/files?after=${all[0]}&limit=1`, { headers: acme });
    expect(next.status).toBe(200);
    expect(next.body).toMatchObject({ first_id: all[1], last_id: all[1], has_more: true });
  });

  it("GET /v1/batches: a cursor no batch id could be is a 400 naming after", async () => {
    expectUnknownCursor(
      await stack.request("GET", "/v1/batches?after=batch_nope", { headers: acme }),
      "batch",
      "batch_nope",
    );
  });

  it("GET /v1/batches: another tenant's batch id is a position only: the page holds the tenant's own", async () => {
    const page = await stack.request("GET", `/v1/batches?after=${globexBatch}`, { headers: acme });
    expect(page.status).toBe(200);
    for (const batch of page.body.data) expect(batch.id).not.toBe(globexBatch);
    for (const batch of page.body.data) expect(acmeBatches).toContain(batch.id);
  });

  it("GET /v1/batches: a real cursor pages on", async () => {
    const next = await stack.request("GET", `/v1/batches?after=${acmeBatches[1]}&limit=1`, { headers: acme });
    expect(next.status).toBe(200);
    expect(next.body).toMatchObject({ first_id: acmeBatches[0], has_more: false });
  });

  it("GET /v1/webhook-deliveries answers the same way (unchanged)", async () => {
    expectUnknownCursor(
      await stack.request("GET", "/v1/webhook-deliveries?after=whd_nope", { headers: acme }),
      "webhook delivery",
      "whd_nope",
    );
  });
});
