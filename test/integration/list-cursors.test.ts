/**
 * An `after` cursor that names nothing of the tenant's restarted GET /v1/files and GET /v1/batches
 * from their first page (a client paging on would see the same items again, or loop), where GET
 * /v1/webhook-deliveries answers a 400 naming `after`. All three answer that 400 now, for an
 * unknown id and for another tenant's alike; a real cursor still pages on. Real HTTP.
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

  it("GET /v1/files: an unknown cursor or another tenant's file is a 400 naming after", async () => {
    expectUnknownCursor(
      await stack.request("GET", "/v1/files?after=file-nope&limit=1", { headers: acme }),
      "file",
      "file-nope",
    );
    const theirs = (await stack.request("GET", "/v1/files", { headers: globex })).body.data[0].id;
    expectUnknownCursor(
      await stack.request("GET", `/v1/files?after=${theirs}`, { headers: acme }),
      "file",
      theirs,
    );
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

  it("GET /v1/batches: an unknown cursor or another tenant's batch is a 400 naming after", async () => {
    expectUnknownCursor(
      await stack.request("GET", "/v1/batches?after=batch_nope", { headers: acme }),
      "batch",
      "batch_nope",
    );
    expectUnknownCursor(
      await stack.request("GET", `/v1/batches?after=${globexBatch}`, { headers: acme }),
      "batch",
      globexBatch,
    );
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
