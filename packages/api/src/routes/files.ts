import { Readable } from "node:stream";
import {
  type FileObject,
  FileStorageLimitError,
  type FileStore,
  FileTooLargeError,
  listObject,
  MAX_FILE_BYTES,
} from "@cascade/shared";
import fastifyMultipart from "@fastify/multipart";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { badRequest, checkCursorShape, HttpError, notFound } from "../plugins/http-error.js";
import { closeAfterAnswer } from "../plugins/lingering-close.js";

export interface FileRoutesDeps {
  files: FileStore;
  /** Bytes of uploaded files a tenant may hold at once (`max_file_storage_mb`). */
  limitBytes: (tenant: string) => number;
}

const fileParams = z.object({ id: z.string().min(1).max(200) });
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(10000).default(10000),
  after: z.string().min(1).max(200).optional(),
  order: z.enum(["asc", "desc"]).default("desc"),
  purpose: z.string().min(1).max(64).optional(),
});

/** The multipart fields of an upload besides `file` (OpenAI's, https://platform.openai.com/docs/api-reference/files/create). */
const UPLOAD_FIELDS = ["purpose", "expires_after[anchor]", "expires_after[seconds]"];
const UPLOAD_FIELDS_HINT =
  "send file, purpose and optionally expires_after[anchor] and expires_after[seconds]";

const tooLarge = () =>
  new HttpError(
    413,
    "request_too_large_error",
    `file: larger than the ${MAX_FILE_BYTES / 1024 / 1024} MB limit for one file`,
    "file",
  );

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** A 400 the SDKs do not retry: room comes from deleting files or their expiry, not from asking again. */
const storageFull = (heldBytes: number, limitBytes: number, uploadBytes?: number) =>
  badRequest(
    `file: this tenant's files hold ${mib(heldBytes)} of its ${mib(limitBytes)} (max_file_storage_mb)` +
      `${uploadBytes === undefined ? "" : `, too little for ${mib(uploadBytes)} more`}; delete files` +
      " (DELETE /v1/files/{id}) or wait for them to expire",
    "file",
    "storage_limit_exceeded",
  );

function ttlFrom(fields: Record<string, string>): number | undefined {
  const anchor = fields["expires_after[anchor]"];
  const seconds = fields["expires_after[seconds]"];
  if (anchor === undefined && seconds === undefined) return undefined;
  const value = Number(seconds);
  if (anchor !== "created_at" || !Number.isInteger(value) || value < 3600 || value > 30 * 24 * 3600) {
    throw badRequest(
      'expires_after: anchor must be "created_at" and seconds an integer from 3600 to 2592000',
      "expires_after",
    );
  }
  return value;
}

/**
 * busboy (under @fastify/multipart) reports a body it cannot parse with plain Errors, no code
 * and no status: without this they would be answered as our own fault, a 500. The messages are
 * busboy's own (lib/types/multipart.js, deps/dicer, deps/streamsearch for an overlong boundary).
 */
const MALFORMED_MULTIPART =
  /^(Unexpected end of multipart data|\w+ terminated early due to unexpected end of multipart data|Multipart: Boundary not found|The needle cannot)/;

function isMalformedMultipart(error: unknown): boolean {
  return error instanceof Error && !("code" in error) && MALFORMED_MULTIPART.test(error.message);
}

/**
 * @fastify/multipart logs its busboy options at trace level, and those hold every request
 * header: the tenant's `Authorization: Bearer <key>` with them. Only the other options (the
 * limits) reach the log, as JSON text (Fastify types serializers as returning strings).
 */
function withoutHeaders(options: unknown): string {
  if (!options || typeof options !== "object") return String(options);
  const { headers: _headers, ...rest } = options as Record<string, unknown>;
  return JSON.stringify(rest);
}

const FILE_SCOPE_OPTIONS = { logSerializers: { busboyOptions: withoutHeaders } };

/**
 * `attachment` with the file's name (RFC 6266): an ASCII `filename` for old clients (anything
 * else, quotes and backslashes as `_`), and the name as it is in `filename*` (RFC 8187, UTF-8,
 * percent-encoded). A header holds only Latin-1, so a raw `日本語.jsonl` there made Node refuse
 * the header after the Content-Length was set: a 500 the client waited on.
 */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  // A lone surrogate cannot be encoded (encodeURIComponent throws): as U+FFFD, as toWellFormed does.
  const wellFormed = filename.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    "\uFFFD",
  );
  const encoded = encodeURIComponent(wellFormed).replace(
    /['()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/**
 * The Files API as the Batch API needs it (https://platform.openai.com/docs/api-reference/files):
 * multipart upload with purpose `batch`, metadata, content, list and delete, scoped per tenant.
 */
export function registerFileRoutes(app: FastifyInstance, deps: FileRoutesDeps): void {
  const { files } = deps;
  app.register(async (scope) => {
    // Multipart only here; the limit is the file cap plus one byte, so an oversize upload is seen.
    await scope.register(fastifyMultipart, {
      limits: { fileSize: MAX_FILE_BYTES + 1, files: 1, fields: 10, parts: 12 },
    });
    const routes = scope.withTypeProvider<ZodTypeProvider>();

    routes.post("/v1/files", async (request, reply) => {
      if (!request.isMultipart()) {
        throw new HttpError(
          415,
          "unsupported_media_type_error",
          "POST /v1/files takes multipart/form-data with the fields file and purpose",
        );
      }
      const limitBytes = deps.limitBytes(request.tenant);
      const held = await files.heldBytes(request.tenant);
      if (held >= limitBytes) {
        // Answered before the body is read: its connection goes, rather than the body's bytes.
        closeAfterAnswer(request, reply);
        throw storageFull(held, limitBytes);
      }
      const fields: Record<string, string> = {};
      let upload: { id: string; bytes: number; filename: string } | undefined;
      try {
        for await (const part of request.parts()) {
          if (part.type === "field") {
            // The file sent as text (`curl -F 'file=<x.jsonl'`): it must be a file part.
            if (part.fieldname === "file") {
              throw badRequest(
                "file: send the JSONL as a file part (curl -F file=@input.jsonl), not as a text field",
                "file",
              );
            }
            // As the JSON endpoints refuse unknown fields (and as OpenAI answers): a 400 naming it.
            if (!UPLOAD_FIELDS.includes(part.fieldname)) {
              throw badRequest(`unknown field "${part.fieldname}"; ${UPLOAD_FIELDS_HINT}`, part.fieldname);
            }
            fields[part.fieldname] = String(part.value);
            continue;
          }
          if (part.fieldname !== "file" || upload) {
            part.file.resume();
            throw badRequest("send exactly one file, in the field named file", "file");
          }
          const stored = await files.upload(part.file, MAX_FILE_BYTES, {
            tenant: request.tenant,
            limitBytes,
          });
          upload = { ...stored, filename: part.filename || "upload.jsonl" };
          if (part.file.truncated) throw new FileTooLargeError(MAX_FILE_BYTES);
        }
        if (!upload) throw badRequest("file: a file is required (multipart field file)", "file");
        const purpose = fields.purpose;
        if (purpose === undefined) throw badRequest("purpose: required; use batch", "purpose");
        if (purpose !== "batch") {
          throw badRequest(
            `purpose: Cascade stores files for the Batch API only, so purpose must be "batch" (got "${purpose}")`,
            "purpose",
          );
        }
        const ttlSeconds = ttlFrom(fields);
        const file = await files.commit(request.tenant, upload, {
          filename: upload.filename,
          purpose,
          ttlSeconds,
          limitBytes,
        });
        upload = undefined;
        return reply.code(200).send(file);
      } catch (error) {
        if (upload) await files.discard(upload.id, request.tenant);
        const code = (error as { code?: string }).code;
        if (error instanceof FileTooLargeError || code === "FST_REQ_FILE_TOO_LARGE") throw tooLarge();
        if (error instanceof FileStorageLimitError) {
          // Refused mid-body (a chunk past the limit): the rest of it is not read, the connection goes.
          if (!upload) closeAfterAnswer(request, reply);
          throw storageFull(error.heldBytes, error.limitBytes, upload?.bytes);
        }
        if (code === "FST_PROTO_VIOLATION") {
          // @fastify/multipart refuses a field named after an object property and does not say which.
          throw badRequest(
            `a field is named after an object property (__proto__, constructor, ...); ${UPLOAD_FIELDS_HINT}`,
          );
        }
        if (code === "FST_FILES_LIMIT" || code === "FST_PARTS_LIMIT" || code === "FST_FIELDS_LIMIT") {
          throw badRequest("send one file and the fields purpose (and expires_after) only", "file");
        }
        if (isMalformedMultipart(error)) {
          throw badRequest(`body is not valid multipart/form-data: ${(error as Error).message}`, "file");
        }
        throw error;
      }
    });

    routes.get("/v1/files", { schema: { querystring: listQuery } }, async (request) => {
      checkCursorShape(request.query.after, "file-", "file");
      return listObject(await files.list(request.tenant, request.query));
    });

    const load = async (tenant: string, id: string): Promise<FileObject> => {
      const file = await files.get(tenant, id);
      if (!file) throw notFound(`no file with id ${id}`);
      return file;
    };

    routes.get("/v1/files/:id", { schema: { params: fileParams } }, async (request) =>
      load(request.tenant, request.params.id),
    );

    routes.get("/v1/files/:id/content", { schema: { params: fileParams } }, async (request, reply) => {
      const file = await load(request.tenant, request.params.id);
      reply
        .header("content-type", "application/octet-stream")
        .header("content-length", String(file.bytes))
        .header("content-disposition", contentDisposition(file.filename));
      return reply.send(Readable.from(files.content(file.id)));
    });

    routes.delete("/v1/files/:id", { schema: { params: fileParams } }, async (request) => {
      const { id } = request.params;
      if (!(await files.delete(request.tenant, id))) throw notFound(`no file with id ${id}`);
      return { id, object: "file", deleted: true };
    });
  }, FILE_SCOPE_OPTIONS);
}
