/**
 * multipart/form-data uploads for POST /v1/files, written by hand so they can be wrong in the
 * ways a hand-rolled client is: the boundary missing from the header or the body, parts without
 * a name, two files, no closing delimiter, fields past the limits.
 */
import fc from "fast-check";
import { batchFileArbitrary } from "./request-bodies.js";

export interface MultipartUpload {
  contentType: string;
  body: string;
  /**
   * Set when the upload is one the contract says must be stored (one file in the field `file`,
   * purpose `batch`, a valid expires_after or none): the content it must read back as.
   */
  expectedContent?: string;
}

type Part =
  | { kind: "field"; name: string; value: string }
  | { kind: "file"; name: string; filename: string | undefined; content: string };

const field = (name: string, value: string): Part => ({ kind: "field", name, value });

/** The purpose field: mostly right. */
const purposeParts = fc.oneof(
  { weight: 8, arbitrary: fc.constant([field("purpose", "batch")]) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      [],
      [field("purpose", "fine-tune")],
      [field("purpose", "")],
      [field("purpose", "batch"), field("purpose", "batch")],
    ),
  },
);

/** expires_after: mostly absent, else a valid pair or a broken one. */
const expiryParts = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Part[]>([]) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 3600, max: 30 * 24 * 3600 })
      .map((seconds) => [
        field("expires_after[anchor]", "created_at"),
        field("expires_after[seconds]", String(seconds)),
      ]),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      [field("expires_after[anchor]", "now"), field("expires_after[seconds]", "3600")],
      [field("expires_after[seconds]", "-1")],
      [field("expires_after[anchor]", "created_at")],
    ),
  },
);

const filePart = fc
  .record({
    name: fc.oneof(
      { weight: 10, arbitrary: fc.constant("file") },
      { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
    ),
    filename: fc.oneof(
      { weight: 6, arbitrary: fc.constant("input.jsonl") },
      { weight: 1, arbitrary: fc.constantFrom(undefined, "", "../../etc/passwd", 'a"b.jsonl', "x\\y.jsonl") },
    ),
    content: batchFileArbitrary,
  })
  .map((part): Part => ({ kind: "file", ...part }));

/** Mostly exactly one file; sometimes none or two. */
const fileParts = fc.oneof(
  { weight: 8, arbitrary: filePart.map((part) => [part]) },
  { weight: 1, arbitrary: fc.array(filePart, { minLength: 2, maxLength: 2 }) },
  { weight: 1, arbitrary: fc.constant<Part[]>([]) },
);

/** Fields nobody asked for, rarely. */
const strayParts = fc.oneof(
  { weight: 8, arbitrary: fc.constant<Part[]>([]) },
  {
    weight: 1,
    arbitrary: fc.array(
      fc
        .tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 30 }))
        .map(([name, value]) => field(name, value)),
      { minLength: 1, maxLength: 11 },
    ),
  },
);

/** Header-safe: a quote or a line break in a name would make the part unparseable by design. */
const quoted = (text: string) => text.replace(/["\r\n]/g, "_");

function renderPart(boundary: string, part: Part): string {
  const disposition =
    part.kind === "field"
      ? `form-data; name="${quoted(part.name)}"`
      : `form-data; name="${quoted(part.name)}"${part.filename === undefined ? "" : `; filename="${quoted(part.filename)}"`}`;
  const type = part.kind === "file" ? "Content-Type: application/jsonl\r\n" : "";
  return `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n${part.kind === "field" ? part.value : part.content}\r\n`;
}

const wellFormed = fc
  .record({
    boundary: fc.stringMatching(/^[A-Za-z0-9'()+_,-]{1,60}$/),
    purpose: purposeParts,
    expiry: expiryParts,
    files: fileParts,
    stray: strayParts,
    filesFirst: fc.boolean(),
  })
  .map(({ boundary, purpose, expiry, files, stray, filesFirst }): MultipartUpload => {
    const fields = [...purpose, ...expiry, ...stray];
    const parts = filesFirst ? [...files, ...fields] : [...fields, ...files];
    const body = `${parts.map((part) => renderPart(boundary, part)).join("")}--${boundary}--\r\n`;
    const [onlyFile] = files;
    const expiryValid = expiry.length === 0 || expiry.length === 2;
    // What the contract says must be accepted: one file named file, purpose batch, a valid expiry.
    const acceptable =
      files.length === 1 &&
      onlyFile?.kind === "file" &&
      onlyFile.name === "file" &&
      // Without a filename a part is a field (RFC 7578), not a file.
      onlyFile.filename !== undefined &&
      purpose.length === 1 &&
      purpose[0]?.kind === "field" &&
      purpose[0].value === "batch" &&
      expiryValid &&
      (expiry.length === 0 || (expiry[0]?.kind === "field" && expiry[0].value === "created_at")) &&
      stray.length === 0;
    return {
      contentType: `multipart/form-data; boundary=${boundary}`,
      body,
      ...(acceptable && onlyFile?.kind === "file" ? { expectedContent: onlyFile.content } : {}),
    };
  });

/** Ways to break a well-formed upload after the fact. */
const broken = fc
  .tuple(
    wellFormed,
    fc.constantFrom("truncate", "wrong-boundary", "no-boundary", "no-closing", "garbage", "quoted"),
  )
  .chain(([upload, damage]) =>
    fc.nat({ max: upload.body.length }).map((cut): MultipartUpload => {
      switch (damage) {
        case "truncate":
          return { contentType: upload.contentType, body: upload.body.slice(0, cut) };
        case "wrong-boundary":
          return { contentType: "multipart/form-data; boundary=other", body: upload.body };
        case "no-boundary":
          return { contentType: "multipart/form-data", body: upload.body };
        case "no-closing":
          return { contentType: upload.contentType, body: upload.body.replace(/--\r\n$/, "\r\n") };
        case "quoted":
          return {
            contentType: upload.contentType.replace(/boundary=(.*)$/, 'boundary="$1"'),
            body: upload.body,
          };
        default:
          return {
            contentType: upload.contentType,
            body: `${upload.body.slice(0, cut)}\r\n--\r\n\0${upload.body.slice(cut)}`,
          };
      }
    }),
  );

export const multipartUploadArbitrary: fc.Arbitrary<MultipartUpload> = fc.oneof(
  { weight: 4, arbitrary: wellFormed },
  { weight: 2, arbitrary: broken },
);
