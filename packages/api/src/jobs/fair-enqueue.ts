import {
  completionJobOptions,
  FAIR_PLACEHOLDER_PRIORITY,
  type FairTags,
  fairJobData,
  type JobData,
  type JobOutcome,
  QUEUE_NAMES,
  type RedisClient,
} from "@cascade/shared";
import { createIORedisClient, type IRedisTransaction, Job, type Queue } from "bullmq";

type Reply = [Error | null, unknown];

/** What `Job.addJob` hands the client it is given: BullMQ's command and its arguments. */
interface BullmqCommand {
  name: string;
  args: unknown[];
}

/** The ioredis side of a command defined with `defineCommand` (not in ioredis's typings). */
interface DefinedScript {
  lua?: unknown;
  numberOfKeys?: unknown;
}

/** BullMQ's add of a prioritized job: its versioned script name starts with this. */
const BULLMQ_ADD = "addPrioritizedJob:";
/** BullMQ's add scripts take three ARGV: packed arguments, the data, packed options. */
const BULLMQ_ADD_ARGS = 3;

/**
 * Adds completion jobs at their fair-share tag in one round trip and one script call
 * (docs/decisions/0021-one-round-trip-per-enqueue.md): BullMQ builds its own add command (through
 * `Job.addJob`, given a client that only records it, at a placeholder priority), and fair-add
 * computes the job's tag, puts it in BullMQ's packed options as the priority, then runs BullMQ's
 * add script as BullMQ loaded it on this connection: the job is added at its tag (at the
 * placeholder, the back of its line, only if the tag failed).
 *
 * Should BullMQ's add ever not have the expected shape (a BullMQ upgrade), the add goes through an
 * ioredis MULTI instead — BullMQ's add and fair-place, as BullMQ's own FlowProducer adds to a
 * MULTI: as correct, but ~150 µs of CPU more per job (an ioredis MULTI object copies every
 * script defined on the connection). It is logged once.
 */
export class FairEnqueue {
  /** BullMQ's wrapper of the queue's own connection (the same object its Queue uses). */
  private readonly client: { multi(): IRedisTransaction };
  /** Resolves to whether fair-add is defined (false: the MULTI path). */
  private composed: Promise<boolean> | undefined;

  constructor(
    private readonly queue: Queue<JobData, JobOutcome>,
    private readonly redis: RedisClient,
    private readonly fairTags: FairTags,
    private readonly warn: (message: string) => void = () => {},
    /** False: always the MULTI path (tests of the fallback). */
    private readonly oneScript = true,
  ) {
    this.client = createIORedisClient(redis as never);
  }

  /** Adds the job (its data as `fairJobData` writes it) at its tag; throws when it was not added. */
  async add(jobId: string, data: JobData, priority: number): Promise<void> {
    const options = completionJobOptions({ jobId, queuePriority: FAIR_PLACEHOLDER_PRIORITY });
    const job = new Job(
      this.queue,
      QUEUE_NAMES.completions,
      fairJobData(data),
      { ...this.queue.defaultJobOptions, ...options },
      jobId,
    );
    this.composed ??= this.oneScript ? this.compose() : Promise.resolve(false);
    const command = (await this.composed) ? recordAdd(job) : undefined;
    if (command?.name.startsWith(BULLMQ_ADD)) {
      const reply = await this.fairTags.add(command.args, data.tenant, priority, jobId);
      checkAdded(jobId, reply);
      return;
    }
    await this.addInMulti(job, data.tenant, priority, jobId);
  }

  /**
   * Defines fair-add from BullMQ's add script on this connection. BullMQ loads its scripts once
   * the connection is ready; the command name comes from BullMQ itself (a dry run of `addJob`).
   */
  private async compose(): Promise<boolean> {
    try {
      await this.queue.waitUntilReady();
      const probe = new Job(this.queue, QUEUE_NAMES.completions, {} as never, { priority: 1 }, "probe");
      const command = recordAdd(probe);
      const scripts = (this.redis as unknown as { scriptsSet?: Record<string, DefinedScript> }).scriptsSet;
      const script = command ? scripts?.[command.name] : undefined;
      const { lua, numberOfKeys } = script ?? {};
      if (
        command?.name.startsWith(BULLMQ_ADD) &&
        typeof lua === "string" &&
        !lua.startsWith("#!") &&
        typeof numberOfKeys === "number" &&
        command.args.length === numberOfKeys + BULLMQ_ADD_ARGS
      ) {
        this.fairTags.defineAdd({ lua, keys: numberOfKeys, args: BULLMQ_ADD_ARGS });
        return true;
      }
      this.warn(
        `BullMQ's add (${command?.name ?? "none"}) is not the script fair-add wraps; enqueueing through a MULTI instead`,
      );
    } catch (error) {
      // Redis failing under the first enqueue says nothing about BullMQ's script: try again next time.
      this.composed = undefined;
      this.warn(
        `fair-add could not be defined yet (${(error as Error).message}); this job goes through a MULTI`,
      );
    }
    return false;
  }

  private async addInMulti(job: Job, tenant: string, priority: number, jobId: string): Promise<void> {
    const transaction = this.client.multi();
    // Queued synchronously; its reply is read from the EXEC (as BullMQ's own addBulk does).
    job.addJob(transaction).catch(() => {});
    this.fairTags.queuePlace(transaction, tenant, priority, jobId);
    const replies = (await transaction.exec()) as Reply[] | null;
    if (!replies) throw new Error(`job ${jobId}: the MULTI adding it was discarded`);
    const [added, placed] = replies;
    if (added?.[0]) throw added[0];
    checkAdded(jobId, added?.[1]);
    // The add happened but its placement did not (the script cache flushed under the MULTI):
    // place it on its own now, or it would wait at the back of the line.
    // Never fail the enqueue from here: the job exists, and a retry would add a second one.
    if (!placed || placed[0]) {
      await this.fairTags.place(tenant, priority, jobId).catch((error: Error) => {
        this.warn(
          `job ${jobId} was added but not placed at its fair-share tag (${error.message}); it waits at the back of the line`,
        );
      });
    }
  }
}

/**
 * The command BullMQ's `addJob` sends for `job`, recorded instead of sent: `addJob` calls
 * `runCommand(name, args)` on the client it is given (BullMQ's client interface), synchronously.
 */
function recordAdd(job: Job): BullmqCommand | undefined {
  let recorded: BullmqCommand | undefined;
  const recorder = {
    runCommand(name: string, args: unknown[]) {
      recorded = { name, args };
      return Promise.resolve(job.id);
    },
  };
  job.addJob(recorder as never).catch(() => {});
  return recorded;
}

/** BullMQ's add answers the job id (or an existing job's with that id), else a negative code. */
function checkAdded(jobId: string, reply: unknown): void {
  if (reply !== jobId) throw new Error(`job ${jobId}: BullMQ's add answered ${String(reply)}`);
}
