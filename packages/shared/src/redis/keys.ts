/**
 * Every Redis key Cascade uses, built in one place. All keys share one hash tag, `{prefix}`, so
 * multi-key Lua scripts and BullMQ's own scripts work on Redis Cluster.
 */
export const QUEUE_NAMES = { completions: "completions", webhooks: "webhooks" } as const;

export interface Keys {
  /** The BullMQ queue prefix, e.g. `{cascade}`. */
  readonly bullPrefix: string;
  /** Idempotency record for a tenant and a hashed Idempotency-Key. */
  idempotency(tenant: string, keyHash: string): string;
  /** Terminal record of a job cancelled while queued (its BullMQ job is removed). */
  cancelledJob(jobId: string): string;
  /** Flag set when a running job is asked to cancel; its worker checks it between hops. */
  cancelRequested(jobId: string): string;
  /** Pub/sub channel on which cancellations of running jobs are announced. */
  readonly cancelChannel: string;
}

export function createKeys(prefix: string): Keys {
  const tag = `{${prefix}}`;
  return {
    bullPrefix: tag,
    idempotency: (tenant, keyHash) => `${tag}:idem:${tenant}:${keyHash}`,
    cancelledJob: (jobId) => `${tag}:cancelled:${jobId}`,
    cancelRequested: (jobId) => `${tag}:cancel-requested:${jobId}`,
    cancelChannel: `${tag}:cancel`,
  };
}
