import {
  type BatchLineError,
  type BatchObject,
  type BatchStore,
  type CompletionQueue,
  type Config,
  type CreateBatchBody,
  drainBatch,
  enqueueBatch,
  FileChangedError,
  type FileStore,
  type IdGenerator,
  isTerminalBatchStatus,
  type Logger,
  newLeaseToken,
  type RequestObserver,
  readLines,
  toBatchObject,
} from "@cascade/shared";
import { badRequest, HttpError } from "../plugins/http-error.js";
import { validateBatchInput } from "./batch-validator.js";

/** An input file that failed validation: a 400 naming the lines (OpenAI's `errors.data`). */
export class BatchValidationError extends Error {
  constructor(
    readonly fileId: string,
    readonly errors: BatchLineError[],
  ) {
    const shown = errors.slice(0, 3).map((error) => error.message);
    const more = errors.length > 3 ? `; and ${errors.length - 3} more (see error.errors)` : "";
    super(`input file ${fileId} is not a valid batch input: ${shown.join("; ")}${more}`);
    this.name = "BatchValidationError";
  }
}

export interface BatchServiceDeps {
  config: Config;
  store: BatchStore;
  files: FileStore;
  queue: CompletionQueue;
  /**
   * The store and queue the background enqueue and cancel drain use: on a connection whose
   * commands may take longer than a request may wait (app.ts). Default: `store` and `queue`.
   */
  background?: { store: BatchStore; queue: CompletionQueue };
  logger: Logger;
  newId: IdGenerator;
  /** Told of the lines a cancel takes back (BatchQueueDeps.counts). */
  counts?: { observer: RequestObserver; now(): number };
}

/**
 * POST /v1/batches and cancel: validates the whole input file before answering (a bad file is a
 * 400, like OpenAI's), writes the batch, then enqueues its lines in the background. The record
 * and a copy of the input are in Redis before the answer, so if this process dies mid-enqueue,
 * a worker's sweeper takes the expired lease and resumes at the cursor (docs/decisions/0009).
 */
export class BatchService {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<unknown> }>();
  private readonly drains = new Set<Promise<unknown>>();

  constructor(private readonly deps: BatchServiceDeps) {}

  async create(tenant: string, body: CreateBatchBody): Promise<BatchObject> {
    const { config, store, files, logger } = this.deps;
    const file = await files.get(tenant, body.input_file_id);
    if (!file) throw badRequest(`input_file_id: no file with id ${body.input_file_id}`, "input_file_id");
    if (file.purpose !== "batch") {
      throw badRequest(
        `input_file_id: file ${file.id} has purpose "${file.purpose}"; upload the input with purpose "batch"`,
        "input_file_id",
      );
    }
    // The file may be deleted while it is read (OpenAI lets a file go at any time): that is the
    // request's input gone, a 400 naming it, not a 500, nor an "empty file" when it went first.
    const deleted = () => badRequest(`input_file_id: file ${file.id} was deleted`, "input_file_id");
    let validation: Awaited<ReturnType<typeof validateBatchInput>>;
    try {
      validation = await validateBatchInput(
        readLines(store.redis, store.keys.fileData(file.id)),
        config.file,
        body.endpoint,
      );
    } catch (error) {
      if (error instanceof FileChangedError) throw deleted();
      throw error;
    }
    if (validation.errors.length) {
      if (!(await files.get(tenant, file.id))) throw deleted();
      throw new BatchValidationError(file.id, validation.errors);
    }
    const batchId = this.deps.newId("batch");
    const token = newLeaseToken();
    const record = await store.create(
      {
        id: batchId,
        tenant,
        input_file_id: file.id,
        endpoint: body.endpoint,
        completion_window: body.completion_window,
        metadata: body.metadata ?? null,
        priority: body.priority,
        total: validation.total,
        output_ttl_s: body.output_expires_after?.seconds ?? config.settings.JOB_RETENTION_S,
      },
      token,
    );
    if (!record) throw deleted();
    logger.info({ batch_id: batchId, tenant, lines: validation.total }, "batch accepted");
    this.enqueue(batchId, token);
    return toBatchObject(record);
  }

  private enqueue(batchId: string, token: string): void {
    const controller = new AbortController();
    const deps = { ...this.deps, ...this.deps.background, config: this.deps.config.file };
    const done = enqueueBatch(deps, batchId, token, controller.signal)
      .then((result) => {
        if (result !== "done")
          this.deps.logger.info({ batch_id: batchId, result }, "batch enqueue handed over");
      })
      .catch((error) =>
        // The lease lapses and a worker's sweeper resumes the enqueue at the cursor.
        this.deps.logger.error(
          { err: error, batch_id: batchId },
          "batch enqueue failed; a sweeper will resume it",
        ),
      )
      .finally(() => this.running.delete(batchId));
    this.running.set(batchId, { controller, done });
  }

  /**
   * Cancels a batch: status cancelling at once, then queued lines are removed and running ones
   * aborted in the background (a sweeper finishes the job if this process dies). A batch that has
   * already ended, or is finalizing (all its lines have), is a 409.
   */
  async cancel(tenant: string, batchId: string): Promise<BatchObject | undefined> {
    const { store } = this.deps;
    const record = await store.get(tenant, batchId);
    if (!record) return undefined;
    const result = await store.transition(batchId, "cancel");
    // Finalizing (its lines have all ended, or its window is over and it is expiring): it ends
    // completed or expired whatever is asked now.
    const ended = isTerminalBatchStatus(result.status) || result.status === "finalizing";
    if (!result.changed && ended) {
      const state =
        result.status === "finalizing"
          ? result.ending === "expire"
            ? "is expiring: its completion window is over"
            : "is finalizing: every line has ended"
          : `has already ended (status ${result.status})`;
      throw new HttpError(
        409,
        "conflict_error",
        `batch ${batchId} ${state}; nothing to cancel`,
        undefined,
        // OpenAI's SDKs retry a 409 unless told not to: asking again cannot help here.
        { "x-should-retry": "false" },
      );
    }
    if (result.changed) {
      const drain = drainBatch({ ...this.deps, ...this.deps.background }, batchId)
        .catch((error) =>
          this.deps.logger.error({ err: error, batch_id: batchId }, "batch cancel drain failed"),
        )
        .finally(() => this.drains.delete(drain));
      this.drains.add(drain);
    }
    const current = await store.get(tenant, batchId);
    return current ? toBatchObject(current) : undefined;
  }

  /** Stops background enqueues at their next chunk (releasing their leases for a sweeper). */
  async close(): Promise<void> {
    for (const { controller } of this.running.values()) controller.abort();
    await Promise.all([...[...this.running.values()].map((entry) => entry.done), ...this.drains]);
  }
}
