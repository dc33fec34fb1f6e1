import { createBatchBodySchema, DEFAULT_FILE_STORAGE_MB, listObject, toBatchObject } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { BatchService, type BatchServiceDeps, BatchValidationError } from "../batches/batch-service.js";
import { checkCursorShape, notFound } from "../plugins/http-error.js";
import { registerFileRoutes } from "./files.js";

/** What the batch and file routes need: the batch service's (its store, queue, counts). */
export type BatchApiDeps = BatchServiceDeps;

const batchParams = z.object({ id: z.string().min(1).max(200) });
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().min(1).max(200).optional(),
});

/**
 * The OpenAI Batch API (https://platform.openai.com/docs/api-reference/batch) and the Files API it
 * reads from and writes to, so the official SDKs work with only their base URL changed.
 */
export function registerBatchApi(app: FastifyInstance, deps: BatchApiDeps): void {
  const { store, files } = deps;
  const service = new BatchService(deps);
  app.addHook("onClose", () => service.close());
  registerFileRoutes(app, {
    files,
    limitBytes: (tenant) =>
      (deps.config.tenants.get(tenant)?.config.max_file_storage_mb ?? DEFAULT_FILE_STORAGE_MB) * 1024 * 1024,
  });
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.post("/v1/batches", { schema: { body: createBatchBodySchema } }, async (request, reply) => {
    try {
      return await service.create(request.tenant, request.body);
    } catch (error) {
      if (!(error instanceof BatchValidationError)) throw error;
      const first = error.errors[0];
      return reply.code(400).send({
        error: {
          type: "invalid_request_error",
          code: "invalid_batch_input",
          message: error.message,
          param: "input_file_id",
          line: first?.line ?? null,
          errors: { object: "list", data: error.errors },
        },
      });
    }
  });

  routes.get("/v1/batches", { schema: { querystring: listQuery } }, async (request) => {
    checkCursorShape(request.query.after, "batch_", "batch");
    const page = await store.list(request.tenant, { ...request.query, order: "desc" });
    return listObject({ data: page.data.map(toBatchObject), has_more: page.has_more });
  });

  routes.get("/v1/batches/:id", { schema: { params: batchParams } }, async (request) => {
    const record = await store.get(request.tenant, request.params.id);
    if (!record) throw notFound(`no batch with id ${request.params.id}`);
    return toBatchObject(record);
  });

  routes.post("/v1/batches/:id/cancel", { schema: { params: batchParams } }, async (request) => {
    const batch = await service.cancel(request.tenant, request.params.id);
    if (!batch) throw notFound(`no batch with id ${request.params.id}`);
    return batch;
  });
}
