/**
 * The multipart parser under POST /v1/files (@fastify/busboy, through @fastify/multipart) as
 * Cascade ships it, patched (patches/@fastify__busboy@3.2.6.patch, ADR 0028). These feed the body
 * in one write, the way one socket read delivers it, which the HTTP test cannot force.
 */
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const fromMultipart = createRequire(createRequire(import.meta.url).resolve("@fastify/multipart"));
const Busboy = fromMultipart("@fastify/busboy") as new (options: {
  headers: Record<string, string>;
}) => NodeJS.WritableStream & NodeJS.EventEmitter;

/** Parses `body` written at once; resolves with the field names, or "unfinished" after 2 s. */
function parse(body: string): Promise<string[] | "unfinished"> {
  return new Promise((resolve, reject) => {
    const parser = new Busboy({ headers: { "content-type": "multipart/form-data; boundary=b" } });
    const fields: string[] = [];
    const timer = setTimeout(() => resolve("unfinished"), 2_000);
    parser.on("field", (name: string) => fields.push(name));
    parser.on("file", (_name: string, file: NodeJS.ReadableStream) => file.resume());
    parser.on("error", (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    parser.on("finish", () => {
      clearTimeout(timer);
      resolve(fields);
    });
    parser.end(Buffer.from(body));
  });
}

const field = (name: string) => `--b\r\nContent-Disposition: form-data; name="${name}"\r\n\r\nv\r\n`;

describe("multipart parsing (patched busboy)", () => {
  it("finishes when a skipped part overfills its buffer and the body ends in the same write", async () => {
    // A header block that does not parse makes busboy skip the part; 40 kB is past its buffer.
    const skipped = `--b\r\n--\r\n\0\r\nContent-Disposition: form-data; name="file"\r\n\r\n${"x".repeat(40_000)}\r\n`;
    expect(await parse(`${skipped}${field("one")}${field("two")}--b--\r\n`)).toEqual(["one", "two"]);
  });

  it("finishes when a large part without Content-Disposition sits between fields", async () => {
    const headerless = `--b\r\nX-Nothing: 1\r\n\r\n${"y".repeat(40_000)}\r\n`;
    expect(await parse(`${field("a")}${headerless}${field("c")}--b--\r\n`)).toEqual(["a", "c"]);
  });

  it("still parses a well-formed body", async () => {
    expect(await parse(`${field("purpose")}${field("other")}--b--\r\n`)).toEqual(["purpose", "other"]);
  });
});
