/**
 * The enqueue bench's baseline: a bare Fastify server whose `POST /v1/jobs` adds the body's
 * request to a BullMQ queue (`queue.add` with a job id and the body's priority, so the job goes to
 * the prioritized set as Cascade's do) and answers 202 with the id. No auth, no validation, no
 * chain, no fair share. Fastify, bullmq and ioredis are packages/api's own copies; the Redis
 * connection is `createRedis(url)` with the API's settings (no offline queue, a command timeout,
 * writes coalesced per event-loop turn: docs/decisions/0025-coalesced-redis-writes.md).
 * Run as `node --import tsx bench/enqueue/bare-server.ts`; env REDIS_URL, ENQUEUE_PREFIX; prints
 * `listening <port>` when ready.
 *
 * What-ifs for the ablation (`pnpm bench:enqueue --ablation`): ENQUEUE_FAIR=1 asks Cascade's
 * fair-share tags script for the job's BullMQ priority first (`FairTags.priorities`, as
 * `JobStore.add` does), and ENQUEUE_AUTOPIPELINE=1 turns on ioredis auto-pipelining on the
 * connection instead of coalesced writes.
 */
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "../support/modules.js";

type SharedModule = typeof import("../../packages/shared/dist/index.js");
type FastifyModule = typeof import("../../packages/api/node_modules/fastify/fastify.js");
type BullmqModule = typeof import("../../packages/worker/node_modules/bullmq/dist/esm/index.js");

const requireFromApi = createRequire(join(repoRoot, "packages", "api", "package.json"));
const shared = (await import(
  pathToFileURL(join(repoRoot, "packages", "shared", "dist", "index.js")).href
)) as SharedModule;
const { fastify } = requireFromApi("fastify") as FastifyModule;
const bullmq = requireFromApi("bullmq") as BullmqModule;

const fair = process.env.ENQUEUE_FAIR === "1";
const autoPipelined = process.env.ENQUEUE_AUTOPIPELINE === "1";
const redis = shared.createRedis(process.env.REDIS_URL as string, {
  enableOfflineQueue: false,
  commandTimeout: 10_000,
  // As the API's connection; the auto-pipelined what-if replaces it (the two do not combine).
  ...(autoPipelined
    ? { enableAutoPipelining: true }
    : { coalesceWrites: true, coalesceMaxHoldMs: shared.COALESCE_MAX_HOLD_MS }),
});
// The fair clock and sets under the queue's own prefix (a hash tag, as Cascade's keys are).
const prefix = process.env.ENQUEUE_PREFIX as string;
const fairTags = fair
  ? new shared.FairTags(redis, shared.createKeys(prefix.replace(/^\{|\}$/g, "")))
  : undefined;
const queue = new bullmq.Queue(shared.QUEUE_NAMES.completions, {
  connection: redis as never,
  prefix,
});
await queue.waitUntilReady();

const app = fastify({ logger: false, bodyLimit: 1024 * 1024 });
app.post("/v1/jobs", async (request, reply) => {
  const body = request.body as { request: unknown; priority?: number };
  const id = `job_${randomUUID()}`;
  const priority = body.priority ?? 5;
  const [queuePriority] = fairTags ? await fairTags.priorities("bench", priority, 1) : [priority];
  await queue.add(
    shared.QUEUE_NAMES.completions,
    { request: body.request, priority, created_at: Math.floor(Date.now() / 1000) },
    {
      jobId: id,
      priority: queuePriority ?? priority,
      attempts: 3,
      backoff: { type: "exponential", delay: 1000 },
    },
  );
  reply.header("location", `/v1/jobs/${id}`);
  return reply.code(202).send({ id, object: "job", status: "queued" });
});
const address = await app.listen({ port: 0, host: "127.0.0.1" });
process.stdout.write(`listening ${new URL(address).port}\n`);
process.on("SIGTERM", () => {
  void app.close().finally(() => process.exit(0));
});
