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
  /** Pub/sub channel on which cancellations of running jobs are announced. */
  readonly cancelChannel: string;
  /** Set when a running job is asked to cancel; checked when a job starts again after a pause. */
  cancelRequest(jobId: string): string;
  /** Circuit breaker state (hash) and its rolling window of outcomes (hash of per-bucket counts). */
  breaker(breakerId: string): string;
  breakerWindow(breakerId: string): string;
  /** 429 cooldown of a provider or model (hash: until, streak). */
  cooldown(scope: LimitScope, id: string): string;
  /** Token bucket (hash: tokens, ts) for rpm or tpm of a provider, model or tenant. */
  bucket(scope: LimitScope, id: string, kind: "rpm" | "tpm"): string;
  /** Spend so far in a period (string, USD) of a tenant, or of one end user of a tenant. */
  spend(owner: SpendOwner, period: string): string;
  /** Spend by route, model and user for one tenant and UTC day (hash, USD). */
  usage(tenant: string, day: string): string;
  /** Finished requests of one tenant and UTC day by route and by first model: counts and USD (hash, `request-counts.ts`). */
  requestCounts(tenant: string, day: string): string;
  /** Last settle batch of one worker process written to Redis (its sequence number), so a retried batch is applied once. */
  settleLedger(instanceId: string): string;
  /**
   * Calls one process has sent and not yet settled (hash: call id → what the call is charged if the
   * process dies with it in flight; ADR 0033), and every such process by when it is to be taken
   * for dead: its last heartbeat plus its stale time (zset, Redis time in ms).
   */
  callJournal(instanceId: string): string;
  readonly callJournals: string;
  /**
   * The calls of one job that a dead process left in flight, as its recovery charged them (hash:
   * `<process id>/<call id>` → the journal entry), read by the run that takes the job over.
   */
  lostCalls(jobId: string): string;
  /** Recent calls, errors, skips, requests and fallbacks of a provider, model or pool deployment (hash of per-minute counts). */
  stats(scope: "provider" | "model" | "deployment", id: string): string;
  /** Live events of a streaming job (a Redis stream: status, attempt, delta, restart, done). */
  jobEvents(jobId: string): string;
  /** Pub/sub channel announcing breaker state changes (for in-process caches). */
  readonly breakerChannel: string;
  /** Webhook delivery record (hash) and a tenant's deliveries of one status (zset by created_at). */
  webhookDelivery(deliveryId: string): string;
  webhookDeliveryIndex(tenant: string, status: string): string;
  /**
   * Written by the API before each WAIT for replicas (API_REPLICA_ACKS): its place in the
   * replication stream is after every write the requests of that WAIT made (string, with a TTL).
   */
  readonly replicaMark: string;
  /** Failed-jobs sweep: `"<finish ms>:<job id>"` of the last failure handled (string, no TTL). */
  readonly failedSweepCursor: string;
  /** Failed-jobs sweep: the process sweeping this interval (string: its token, with a TTL). */
  readonly failedSweepLease: string;
  /** Present once a failed job has been counted by the request observers (expires with the job). */
  failedJobCounted(jobId: string): string;
  /** Files API: metadata (hash), content (list of chunks) and a tenant's files (zset, by id). */
  file(fileId: string): string;
  fileData(fileId: string): string;
  fileIndex(tenant: string): string;
  /** A tenant's uploaded files' sizes and expiry times (`<bytes>:<expires_at>` by file id). */
  fileBytes(tenant: string): string;
  /** Batch record (hash) and a tenant's batches (zset, by id). */
  batch(batchId: string): string;
  batchIndex(tenant: string): string;
  /** A batch's ended lines (bitmap by line number) and line number -> custom_id (hash). */
  batchEnded(batchId: string): string;
  batchCustomIds(batchId: string): string;
  /** Output and error JSONL lines (lists) that become the batch's files when it ends. */
  batchOutput(batchId: string): string;
  batchErrors(batchId: string): string;
  /** The batch's own copy of its input file while lines are being enqueued (list of chunks). */
  batchInput(batchId: string): string;
  /** Lease of the process enqueueing a batch's lines, and a sweeper's short claim on a batch. */
  batchLease(batchId: string): string;
  batchSweep(batchId: string): string;
  /** Set while a batch's unrecorded lines were reconciled recently (by any process): at most once per idle time. */
  batchReconciled(batchId: string): string;
  /** Batches not yet in a terminal status (set), which sweepers watch. */
  readonly batchesActive: string;
  /** Alerts: finished requests and fallbacks of a route in time buckets (hash `<bucket_start_s>:r|f`). */
  routeWindow(route: string): string;
  /** Alerts: the evaluator's lease (string: the holder's token, with a TTL). */
  readonly alertsLease: string;
  /** Alerts: the current alert of each rule and subject (hash: alert id -> alert JSON). */
  readonly alertsState: string;
  /** Alerts: resolved alerts, newest first (list of alert JSON, capped). */
  readonly alertsHistory: string;
  /** Transitions whose webhooks are not queued yet (list of `{type, at_ms, alert}` JSON; alert-store.ts). */
  readonly alertsOutbox: string;
  /** BullMQ's waiting list and prioritized set of the completions queue (read by the queue_age alert, with the delayed set). */
  readonly completionQueueWait: string;
  readonly completionQueuePrioritized: string;
  /**
   * BullMQ's own keys of the completions queue, which BullMQ writes: a job's hash, the lock a
   * running job's worker holds (value: that run's token), the queue's event stream and meta hash.
   * Our scripts read or write them only to act as, or on behalf of, the run holding the lock.
   */
  completionJob(jobId: string): string;
  completionJobLock(jobId: string): string;
  readonly completionQueueEvents: string;
  readonly completionQueueMeta: string;
  /** Dashboard: one route's finished requests in one UTC minute (hash: requests, succeeded, failed, fallbacks, cost_usd; expires). */
  dashboardRouteMinute(route: string, minute: number): string;
  /** Dashboard: the most recent failed requests of every tenant (list of JSON, newest first, bounded). */
  readonly dashboardFailures: string;
  /** Pools: calls in flight on a deployment (zset: call id -> expiry ms), for `least_busy`. */
  deploymentInFlight(deploymentKey: string): string;
  /** Pools: recent latency of a pool's deployments (hash: deployment key -> EWMA ms), for `lowest_latency`. */
  poolLatency(modelId: string): string;
  /** Pools: when a pool's deployments last failed (hash: deployment key -> Redis ms), for `lowest_latency`. */
  poolFailures(modelId: string): string;
  /** Fairness: the virtual clock of the completions queue and each tenant's last tag (hash). */
  readonly fairClock: string;
  /** Fairness: a tenant's running jobs (zset: `<job id>:<lock token>` of each run -> expiry ms), for `max_concurrency`. */
  tenantRunning(tenant: string): string;
  /** Fairness: a tenant's jobs put back for its `max_concurrency` (zset: job id -> BullMQ priority), woken as its slots free. */
  tenantWaiting(tenant: string): string;
  /** BullMQ's delayed set and active list of the completions queue (a fair-share rebase shifts their jobs' priorities). */
  readonly completionQueueDelayed: string;
  readonly completionQueueActive: string;
}

/**
 * `provider`, `model` and `tenant` limits, and a pooled model's `deployment` (id
 * `<model>/<deployment>`, see `deploymentKey`).
 */
export type LimitScope = "provider" | "model" | "tenant" | "deployment";

/** The id of a pooled model's deployment in keys, breakers, metrics and logs: `<model>/<deployment>`. */
export function deploymentKey(modelId: string, deploymentId: string): string {
  return `${modelId}/${deploymentId}`;
}

/** Whose spend a budget counts: a tenant's, or (with `user`) one of its end users'. */
export interface SpendOwner {
  tenant: string;
  user?: string | undefined;
}

/**
 * One part of a key built from ids users choose (tenant ids may hold `:`, end-user ids anything):
 * percent-encoded, so no two owners share a key (tenant `a` + user `b:c` vs tenant `a:b` + user
 * `c`). Plain ids (letters, digits, `.`, `_`, `-`) are unchanged.
 */
function part(value: string): string {
  // Only the separator and the escape character itself are escaped: that is enough to make the
  // encoding one-to-one, and every id without them (emails included) keeps the key it had.
  return value.replace(/[%:]/g, (char) => (char === "%" ? "%25" : "%3A"));
}

/** Who a breaker guards: a provider, a model that declares its own breaker, or a pool's deployment. */
export type BreakerScope = "provider" | "model" | "deployment";

/**
 * A breaker's id, `provider:<id>` or `model:<id>`: the subject of `keys.breaker` and
 * `keys.breakerWindow`, the `breaker` label of metrics and logs, and what GET /v1/providers shows.
 */
export function breakerId(scope: BreakerScope, id: string): string {
  return `${scope}:${id}`;
}

/**
 * Whose spend a spend key counts, `tenant:<tenant>` or `user:<tenant>:<user>`, each part
 * escaped (see `part`) so that no two owners share one.
 */
export function spendSubjectId(owner: SpendOwner): string {
  return owner.user === undefined
    ? `tenant:${part(owner.tenant)}`
    : `user:${part(owner.tenant)}:${part(owner.user)}`;
}

export function createKeys(prefix: string): Keys {
  const tag = `{${prefix}}`;
  return {
    bullPrefix: tag,
    idempotency: (tenant, keyHash) => `${tag}:idem:${tenant}:${keyHash}`,
    cancelledJob: (jobId) => `${tag}:cancelled:${jobId}`,
    cancelChannel: `${tag}:cancel`,
    cancelRequest: (jobId) => `${tag}:cancel-request:${jobId}`,
    breaker: (breakerId) => `${tag}:breaker:${breakerId}`,
    breakerWindow: (breakerId) => `${tag}:breaker-window:${breakerId}`,
    cooldown: (scope, id) => `${tag}:cooldown:${scope}:${id}`,
    bucket: (scope, id, kind) => `${tag}:bucket:${scope}:${id}:${kind}`,
    spend: (owner, period) => `${tag}:spend:${spendSubjectId(owner)}:${period}`,
    usage: (tenant, day) => `${tag}:usage:${part(tenant)}:${day}`,
    requestCounts: (tenant, day) => `${tag}:request-counts:${part(tenant)}:${day}`,
    settleLedger: (instanceId) => `${tag}:settle-ledger:${instanceId}`,
    callJournal: (instanceId) => `${tag}:call-journal:${instanceId}`,
    callJournals: `${tag}:call-journals`,
    lostCalls: (jobId) => `${tag}:lost-calls:${jobId}`,
    stats: (scope, id) => `${tag}:stats:${scope}:${id}`,
    breakerChannel: `${tag}:breaker-changes`,
    jobEvents: (jobId) => `${tag}:job-events:${jobId}`,
    webhookDelivery: (deliveryId) => `${tag}:whd:${deliveryId}`,
    webhookDeliveryIndex: (tenant, status) => `${tag}:whd-index:${tenant}:${status}`,
    replicaMark: `${tag}:replica-mark`,
    failedSweepCursor: `${tag}:failed-sweep:cursor`,
    failedSweepLease: `${tag}:failed-sweep:lease`,
    failedJobCounted: (jobId) => `${tag}:failed-counted:${jobId}`,
    file: (fileId) => `${tag}:file:${fileId}`,
    fileData: (fileId) => `${tag}:file-data:${fileId}`,
    fileIndex: (tenant) => `${tag}:files:${tenant}`,
    fileBytes: (tenant) => `${tag}:file-bytes:${tenant}`,
    batch: (batchId) => `${tag}:batch:${batchId}`,
    batchIndex: (tenant) => `${tag}:batches:${tenant}`,
    batchEnded: (batchId) => `${tag}:batch-ended:${batchId}`,
    batchCustomIds: (batchId) => `${tag}:batch-custom-ids:${batchId}`,
    batchOutput: (batchId) => `${tag}:batch-output:${batchId}`,
    batchErrors: (batchId) => `${tag}:batch-errors:${batchId}`,
    batchInput: (batchId) => `${tag}:batch-input:${batchId}`,
    batchLease: (batchId) => `${tag}:batch-lease:${batchId}`,
    batchSweep: (batchId) => `${tag}:batch-sweep:${batchId}`,
    batchReconciled: (batchId) => `${tag}:batch-reconciled:${batchId}`,
    batchesActive: `${tag}:batches-active`,
    routeWindow: (route) => `${tag}:alert-route-window:${part(route)}`,
    alertsLease: `${tag}:alerts-lease`,
    alertsState: `${tag}:alerts-state`,
    alertsHistory: `${tag}:alerts-history`,
    alertsOutbox: `${tag}:alerts-outbox`,
    completionQueueWait: `${tag}:${QUEUE_NAMES.completions}:wait`,
    completionQueuePrioritized: `${tag}:${QUEUE_NAMES.completions}:prioritized`,
    completionJob: (jobId) => `${tag}:${QUEUE_NAMES.completions}:${jobId}`,
    completionJobLock: (jobId) => `${tag}:${QUEUE_NAMES.completions}:${jobId}:lock`,
    completionQueueEvents: `${tag}:${QUEUE_NAMES.completions}:events`,
    completionQueueMeta: `${tag}:${QUEUE_NAMES.completions}:meta`,
    dashboardRouteMinute: (route, minute) => `${tag}:dash-route:${part(route)}:${minute}`,
    dashboardFailures: `${tag}:dash-failures`,
    deploymentInFlight: (deployment) => `${tag}:pool-in-flight:${part(deployment)}`,
    poolLatency: (modelId) => `${tag}:pool-latency:${part(modelId)}`,
    poolFailures: (modelId) => `${tag}:pool-failures:${part(modelId)}`,
    fairClock: `${tag}:fair-clock`,
    tenantRunning: (tenant) => `${tag}:tenant-running:${part(tenant)}`,
    tenantWaiting: (tenant) => `${tag}:tenant-waiting:${part(tenant)}`,
    completionQueueDelayed: `${tag}:${QUEUE_NAMES.completions}:delayed`,
    completionQueueActive: `${tag}:${QUEUE_NAMES.completions}:active`,
  };
}
