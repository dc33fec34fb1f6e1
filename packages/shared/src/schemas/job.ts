import { z } from "zod";
import { hopSchema, REASONS } from "../config/schema.js";
import {
  type ChatRequest,
  chatRequestSchema,
  nullsAsUnset,
  openAIChatBodySchema,
  openAIMetadataSchema,
} from "./chat-request.js";

/** The longest `webhook.url` a job takes (what browsers and most servers take in a request line). */
export const WEBHOOK_URL_MAX_LENGTH = 2048;

/** The longest end-user id Cascade keeps (a job's `user`; longer OpenAI `user`s name nobody). */
export const END_USER_MAX_LENGTH = 256;

/** The job's optional fields a client may send as `null`, meaning unset (as the request's). */
const JOB_NULL_MEANS_UNSET = [
  "route",
  "models",
  "webhook",
  "metadata",
  "priority",
  "max_cost_usd",
  "user",
  "deadline_ms",
] as const;

/** POST /v1/jobs body. */
export const createJobBodySchema = z.preprocess(
  nullsAsUnset(JOB_NULL_MEANS_UNSET),
  z.strictObject({
    request: openAIChatBodySchema,
    route: z.string().min(1).optional(),
    models: z.array(z.string().min(1)).min(1, "models must name at least one model").max(16).optional(),
    webhook: z
      .strictObject({
        url: z
          .url({ protocol: /^https?$/, error: "webhook.url must be an http(s) URL" })
          // Kept on each delivery and listed back; receivers refuse longer request lines (414).
          .max(WEBHOOK_URL_MAX_LENGTH, `webhook.url holds at most ${WEBHOOK_URL_MAX_LENGTH} characters`),
      })
      .optional(),
    metadata: openAIMetadataSchema.optional(),
    priority: z.number().int().min(1).max(10).default(5),
    max_cost_usd: z.number().min(0).optional(),
    user: z.string().min(1).max(END_USER_MAX_LENGTH).optional(),
    deadline_ms: z
      .number()
      .int()
      .positive()
      .max(7 * 24 * 3600 * 1000)
      .optional(),
  }),
);
export type CreateJobBody = z.infer<typeof createJobBodySchema>;

export const attemptSchema = z.object({
  model: z.string(),
  provider: z.string(),
  /** The deployment of a pooled model this try went to. */
  deployment: z.string().optional(),
  outcome: z.enum(["success", "error", "skipped"]),
  reason: z.enum(REASONS).optional(),
  http_status: z.number().int().optional(),
  message: z.string().optional(),
  duration_ms: z.number().nonnegative(),
  started_at: z.number().int(),
  retry_after_ms: z.number().nonnegative().optional(),
});
/** One hop's try, as shown in `job.attempts`. */
export type Attempt = z.infer<typeof attemptSchema>;

/**
 * A call its job's cancel, lock loss or shutdown stopped after it was sent: an attempt (it was
 * charged) with no reason of its own. It says nothing about the provider or the request, so what
 * reads failures (the HTTP answer of a failed run, the fallback reason, a pool's last failure)
 * passes over it.
 */
export function isStoppedAttempt(attempt: Attempt): boolean {
  return attempt.outcome === "error" && attempt.reason === undefined;
}

export const jobErrorSchema = z.object({ type: z.string(), message: z.string() });
export type JobError = z.infer<typeof jobErrorSchema>;

/**
 * Where a job is in its chain. Saved as the BullMQ job's `progress` (which also announces it on
 * the queue's event stream, for live job events) so a re-run continues instead of starting over.
 */
export const jobProgressSchema = z.object({
  hop: z.number().int().min(0),
  /** Tries already made on the current hop. */
  tries: z.number().int().min(0),
  attempts: z.array(attemptSchema),
  cost_usd: z.number().nonnegative(),
  started_at: z.number().int().optional(),
  /**
   * A place in line the job holds: the rpm tokens of `hop` (on `deployment`, for a pool) are
   * taken for the moment `at` (ms since the epoch, Redis time); the job calls then without
   * queueing for them again.
   */
  reservation: z
    .object({
      hop: z.number().int().min(0),
      deployment: z.string().optional(),
      /** When to wake (this worker's clock). */
      at: z.number(),
      /** When the slot is due in Redis time, and the rpm buckets booked (admit.lua's positions). */
      due: z.number(),
      booked: z.array(z.number().int().positive()),
    })
    .optional()
    // A reservation this version cannot read is dropped (the job lines up again), never the progress.
    .catch(undefined),
  /**
   * Deployments of the current hop's pooled model that failed since its try began: a run that
   * resumes after a wait passes them over, as the run that waited would have.
   */
  failed_deployments: z.array(z.string()).optional().catch(undefined),
  /**
   * Journal ids (`<process id>/<field>`, CallJournal) of calls already in `attempts` and
   * `cost_usd`: the job's own settled calls (their journal entries may outlive the save, their
   * removal still queued) and calls of earlier runs that their processes left in flight (killed,
   * or stopped past the lock), at their estimates. A run taking the job over skips them.
   */
  counted_calls: z.array(z.string()).optional().catch(undefined),
  /** What the calls earlier runs left in flight came to: their process's recovery counts that money, not the run that ends the job. */
  lost_usd: z.number().nonnegative().optional().catch(undefined),
  /**
   * Times the job was handed back in a row to wait for a tpm bucket at the current hop: each wait
   * looks again twice as late (2 s, 4 s, then 8 s; never past the bucket's refill), so a backlog
   * behind one bucket wakes less often.
   */
  tpm_waits: z.number().int().nonnegative().optional().catch(undefined),
});
export type JobProgress = z.infer<typeof jobProgressSchema>;

/** A BullMQ job's `progress` as Cascade's resume point (BullMQ starts it at 0, not an object). */
export function parseJobProgress(raw: unknown): JobProgress | undefined {
  if (!raw || typeof raw !== "object") return undefined;
  const parsed = jobProgressSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** What the API puts on the queue; validated again by the worker when dequeued. */
export const jobDataSchema = z.object({
  v: z.literal(1),
  /** Never empty: a job always belongs to the tenant whose key created it ("default" in open mode). */
  tenant: z.string().min(1),
  request: chatRequestSchema,
  route: z.string().nullable(),
  chain: z.array(hopSchema).min(1),
  policy: z.object({
    on_content_filter: z.enum(["fallback", "fail"]),
    on_bad_request: z.enum(["fail", "fallback"]),
    on_missing_vision: z.enum(["skip", "strip"]).default("skip"),
  }),
  metadata: z.record(z.string(), z.string()).optional(),
  webhook: z.object({ url: z.string() }).optional(),
  priority: z.number().int(),
  max_cost_usd: z.number().optional(),
  user: z.string().optional(),
  created_at: z.number().int(),
  /** Unix ms after which the job stops waiting for limits. */
  deadline_at: z.number().int(),
  /** Set on the jobs of a batch's lines (POST /v1/batches): the batch, the line's custom_id and 1-based line number. */
  batch: z.object({ id: z.string(), custom_id: z.string(), line: z.number().int().positive() }).optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

/**
 * Job data as it is read back from Redis (a worker's run, the failed-jobs sweep, GET /v1/jobs/:id):
 * the envelope checked as `jobDataSchema` checks it, the request only for being an object with
 * messages. Every writer of job data (POST /v1/jobs, a batch's lines, the CLI through the API)
 * stores the output of the door's parse (`openAIChatBodySchema`: three fields dropped, then the
 * fields `chatRequestSchema` parses), and parsing that output again changes nothing (the
 * transforms only drop and normalise fields): on every run it cost ~6 µs of the ~8 µs the job
 * data's parse took (ADR 0008) and checked nothing the door had not.
 */
export const storedJobDataSchema = jobDataSchema.extend({
  request: z.custom<ChatRequest>(
    (value) =>
      typeof value === "object" &&
      value !== null &&
      Array.isArray((value as { messages?: unknown }).messages) &&
      (value as { messages: unknown[] }).messages.length > 0,
    "request: an object with a non-empty messages array",
  ),
});

/** The worker's return value: the terminal outcome of a job. */
export const jobOutcomeSchema = z.object({
  status: z.enum(["succeeded", "failed", "cancelled"]),
  result: z.record(z.string(), z.unknown()).optional(),
  model: z.string().optional(),
  provider: z.string().optional(),
  cost_usd: z.number(),
  attempts: z.array(attemptSchema),
  error: jobErrorSchema.optional(),
  started_at: z.number().int().optional(),
  finished_at: z.number().int(),
});
export type JobOutcome = z.infer<typeof jobOutcomeSchema>;

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** The public job object (GET /v1/jobs/:id). */
export interface JobObject {
  id: string;
  object: "job";
  status: JobStatus;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  route: string | null;
  models: string[];
  priority: number;
  metadata: Record<string, string>;
  user: string | null;
  result: Record<string, unknown> | null;
  model: string | null;
  provider: string | null;
  cost_usd: number;
  attempts: Attempt[];
  error: JobError | null;
  webhook: { url: string } | null;
}

/**
 * The end user a request's per-user budget and usage count under, the same at every door (jobs,
 * gateway, batch lines): Cascade's own `user` when given, else OpenAI's `user` inside the request.
 * OpenAI takes an empty `user`, and any length; an empty one, or one longer than Cascade keeps,
 * names nobody. As fields to spread into the job's data.
 */
export function endUserOf(user: string | undefined, requestUser: unknown): { user?: string } {
  if (user) return { user };
  return typeof requestUser === "string" &&
    requestUser.length > 0 &&
    requestUser.length <= END_USER_MAX_LENGTH
    ? { user: requestUser }
    : {};
}
