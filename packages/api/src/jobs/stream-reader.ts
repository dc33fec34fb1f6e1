import type { Logger, RedisClient } from "@cascade/shared";
import { Cluster, Command, type Redis } from "ioredis";

export interface StreamEntry {
  id: string;
  event: string;
  data: string;
  /** The `jobId` field (BullMQ's queue events carry one). */
  jobId?: string;
}

type Listener = (entries: StreamEntry[]) => void;

function toEntries(raw: Array<[string, string[]]>): StreamEntry[] {
  return raw.map(([id, fields]) => {
    const entry: StreamEntry = { id, event: "", data: "" };
    for (let index = 0; index < fields.length; index += 2) {
      if (fields[index] === "event") entry.event = fields[index + 1] ?? "";
      else if (fields[index] === "data") entry.data = fields[index + 1] ?? "";
      else if (fields[index] === "jobId") entry.jobId = fields[index + 1] ?? "";
    }
    return entry;
  });
}

/**
 * Follows the Redis streams of the jobs this API process has readers for, with ONE blocking
 * XREAD over all of them: many readers of one job (or of many jobs) cost Redis one blocking read
 * per process. When the set of streams changes, the blocked read is interrupted (CLIENT UNBLOCK)
 * and re-issued with the new set.
 *
 * On a Redis Cluster the XREAD blocks on the node that serves the streams' slot (every Cascade key
 * shares one hash tag), on the reader client's own connection to that node: CLIENT ID is asked on
 * that connection and CLIENT UNBLOCK sent to that node (through the commands client's connection
 * to it). A keyless command sent through a cluster client reaches any node, where the id means
 * another connection or none.
 */
export class StreamReader {
  private readonly streams = new Map<string, { lastId: string; listeners: Set<Listener> }>();
  private clientId: number | undefined;
  private running = false;
  private closed = false;
  private wakeUp: (() => void) | undefined;
  /** Bumped whenever the set of streams changes. */
  private generation = 0;
  /** The generation of the set the XREAD in flight was issued with (undefined: none in flight). */
  private reading: number | undefined;
  /** Whether an UNBLOCK retry chain is running (one at a time). */
  private retrying = false;
  /** The connection `clientId` is the id of (the reader, or its connection to one cluster node). */
  private idConnection: Redis | Cluster | undefined;
  /** Whether `clientId` was found in CLIENT LIST (trusted for the read it was found for only). */
  private idLookedUp = false;
  /** Bumped whenever a watched connection closes: an id asked or found across a close is stale. */
  private closes = 0;
  /** The cluster slot of the streams the XREAD in flight reads (undefined: not a cluster). */
  private slot: number | undefined;
  private readonly watched = new WeakSet<object>();

  constructor(
    private readonly reader: RedisClient,
    private readonly commands: RedisClient,
    private readonly logger: Logger,
  ) {
    // A reconnected reader is a new client: its id must be read again before unblocking it.
    this.watch(reader);
  }

  private watch(connection: Redis | Cluster): void {
    if (this.watched.has(connection)) return;
    this.watched.add(connection);
    connection.on("close", () => {
      this.closes += 1;
      if (this.idConnection === connection) this.clientId = undefined;
    });
    // ioredis sends the XREAD that was in flight again once it has reconnected, on a connection
    // with a new id. CLIENT may be sent while connecting (a handshake command), so its id is asked
    // now and arrives before that XREAD blocks.
    connection.on("connect", () => {
      if (this.idConnection !== connection || this.reading === undefined || this.closed) return;
      this.askId(connection).then(
        (known) => {
          if (known) this.unblock(0);
        },
        () => {},
      );
    });
  }

  /**
   * Asks `connection` its id and keeps it as the reader's, unless the connection closed meanwhile
   * or is no longer the one read on. True when kept.
   */
  private async askId(connection: Redis | Cluster): Promise<boolean> {
    const closes = this.closes;
    const id = Number(await connection.client("ID"));
    if (closes !== this.closes || this.idConnection !== connection) return false;
    this.clientId = id;
    this.idLookedUp = false;
    return true;
  }

  /** The newest entry of `key`, if any. */
  async last(key: string): Promise<StreamEntry | undefined> {
    const raw = (await this.commands.xrevrange(key, "+", "-", "COUNT", 1)) as Array<[string, string[]]>;
    return toEntries(raw)[0];
  }

  /** Entries of `key` after `afterId` ("0" for all), read now (replay). */
  async range(key: string, afterId: string): Promise<StreamEntry[]> {
    const raw = (await this.commands.xrange(key, afterId === "0" ? "-" : `(${afterId}`, "+")) as Array<
      [string, string[]]
    >;
    return toEntries(raw);
  }

  /**
   * Delivers entries of `key` newer than `fromId` as they are written. Returns the function that
   * stops following. Entries may be delivered twice around registration; readers skip ids
   * they have already sent.
   */
  follow(key: string, fromId: string, listener: Listener): () => void {
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { lastId: fromId, listeners: new Set() };
      this.streams.set(key, stream);
      this.interrupt();
    } else if (compareIds(fromId, stream.lastId) < 0) {
      // This reader is behind the shared cursor: catch it up from the stream itself.
      void this.range(key, fromId)
        .then((entries) => {
          const missed = entries.filter(
            (entry) => compareIds(entry.id, (stream as { lastId: string }).lastId) <= 0,
          );
          if (missed.length) listener(missed);
        })
        .catch((error: Error) => this.logger.warn({ err: error.message }, "could not replay a job's events"));
    }
    stream.listeners.add(listener);
    void this.run().catch((error: Error) => {
      this.logger.warn({ err: error.message }, "job event reader stopped; the next reader restarts it");
    });
    return () => {
      stream.listeners.delete(listener);
      if (stream.listeners.size === 0 && this.streams.get(key) === stream) {
        this.streams.delete(key);
        this.interrupt();
      }
    };
  }

  private interrupt(): void {
    this.generation += 1;
    this.wakeUp?.();
    this.unblock(0);
  }

  /** Whether the XREAD in flight was issued with an older set of streams than the current one. */
  private stale(): boolean {
    return this.reading !== undefined && this.reading !== this.generation;
  }

  /**
   * Unblocks the XREAD in flight while it reads an older set of streams. CLIENT UNBLOCK does
   * nothing to a read Redis has not started blocking on yet (sent, not yet run), which would leave
   * the new set unread for the whole BLOCK time: try again every 5 ms for a second, then every
   * 250 ms for as long as that read stays in flight. The later tries are for a read whose
   * connection's id is not known (on a cluster, redirected to another master, where ioredis sent
   * it again): they look the id up by the connection's name.
   */
  private unblock(tries: number): void {
    if (this.closed || !this.stale()) {
      if (tries > 0) this.retrying = false;
      return;
    }
    if (tries === 0 && this.retrying) return;
    this.retrying = true;
    const read = this.reading;
    void this.unblockOnce(read, tries).then((unblocked) => {
      if (!unblocked && !this.closed && this.stale() && this.reading === read) {
        setTimeout(() => this.unblock(tries + 1), tries < 200 ? 5 : 250).unref();
        return;
      }
      this.retrying = false;
      // A newer read may have gone stale while this chain ran for an older one.
      if (!this.closed && this.reading !== read && this.stale()) this.unblock(0);
    });
  }

  /** One CLIENT UNBLOCK of the XREAD in flight; false when it was not (yet) blocked or not found. */
  private async unblockOnce(read: number | undefined, tries: number): Promise<boolean> {
    try {
      // On a cluster the read is on the master the reader's slot table names now.
      const connection = this.slot === undefined ? this.reader : this.masterOf(this.slot);
      if (!connection) return false;
      if (this.clientId === undefined || this.idConnection !== connection) {
        // CLIENT LIST is as long as the server's list of clients: every 100 ms at most.
        if (tries < 200 && tries % 20 !== 0) return false;
        const closes = this.closes;
        const id = await this.lookUpId(connection);
        if (id === undefined && this.slot !== undefined && this.reading === read && tries % 20 === 0) {
          // Not blocked on the master the slot table names: see below (an ASK redirect).
          await this.unblockOnAnyMaster(read);
          return false;
        }
        if (id === undefined || closes !== this.closes || this.reading !== read) return false;
        this.idConnection = connection;
        this.clientId = id;
        this.idLookedUp = true;
        this.watch(connection);
      }
      const target = this.sameNode(this.commands, this.idConnection);
      if (!target) return false;
      const unblocked = Number(await target.client("UNBLOCK", this.clientId)) === 1;
      if (unblocked && this.idLookedUp) {
        // The one unblocked may have been a half-open old connection of the same name, blocked
        // while the new one was not yet: look again until this read has ended.
        this.clientId = undefined;
        return false;
      }
      if (!unblocked && this.slot !== undefined && tries >= 20 && tries % 20 === 0) {
        // Not blocked where the slot table says: an ASK redirect (the slot being migrated) sent
        // the read to the importing master, which the slot table does not name until the
        // migration ends. Every 100 ms, look for it by name on every master.
        await this.unblockOnAnyMaster(read);
        return false;
      }
      return unblocked;
    } catch {
      return false;
    }
  }

  /**
   * CLIENT UNBLOCK of the reader's connections blocked on an XREAD on any master (found by name).
   * The caller keeps trying until the read has ended: one unblocked may have been a half-open old
   * connection of the same name.
   */
  private async unblockOnAnyMaster(read: number | undefined): Promise<void> {
    if (!(this.commands instanceof Cluster)) return;
    const name = connectionNameOf(this.reader);
    if (!name) return;
    await Promise.all(
      this.commands.nodes("master").map(async (node) => {
        const id = await blockedReaderId(node, name);
        if (id !== undefined && this.reading === read) await node.client("UNBLOCK", id);
      }),
    );
  }

  /**
   * The id Redis gave `connection` while it blocks on the XREAD, found by the reader's name in
   * CLIENT LIST on its node (CLIENT ID cannot be asked on it: the XREAD holds it). Of the
   * connections with that name blocked on an XREAD (a half-open old one may linger), the newest.
   * Undefined when the reader has no name or none is blocked yet.
   */
  private async lookUpId(connection: Redis | Cluster): Promise<number | undefined> {
    const name = connectionNameOf(this.reader);
    const node = this.sameNode(this.commands, connection);
    if (!name || !node) return undefined;
    return blockedReaderId(node, name);
  }

  private async run(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    try {
      while (!this.closed) {
        if (this.streams.size === 0) {
          await new Promise<void>((resolve) => {
            this.wakeUp = resolve;
          });
          this.wakeUp = undefined;
          continue;
        }
        const connection = this.readingConnection([...this.streams.keys()][0] as string);
        if (connection !== this.idConnection) {
          this.idConnection = connection;
          this.clientId = undefined;
          this.watch(connection);
        }
        try {
          if (this.clientId === undefined) await this.askId(connection);
        } catch (error) {
          // A cluster node's own connection does not retry (a master that just died): ask again
          // after a pause, as after a failed read, rather than stop reading for every waiter.
          this.clientId = undefined;
          this.idConnection = undefined;
          if (this.closed) break;
          this.logger.warn({ err: (error as Error).message }, "job event reader error; retrying");
          await new Promise((resolve) => setTimeout(resolve, 500));
          continue;
        }
        // The set may have changed while the id was asked: read the set as it is now.
        if (this.streams.size === 0) continue;
        const readKeys = [...this.streams.keys()];
        const ids = readKeys.map((key) => this.streams.get(key)?.lastId ?? "$");
        type Reply = Array<[string, Array<[string, string[]]>]> | null;
        let reply: Reply;
        this.reading = this.generation;
        try {
          reply = (await this.reader.xread("BLOCK", 15_000, "STREAMS", ...readKeys, ...ids)) as Reply;
        } catch (error) {
          this.readEnded();
          if (this.closed) break;
          if (!/UNBLOCKED/.test((error as Error).message)) {
            this.logger.warn({ err: (error as Error).message }, "job event reader error; retrying");
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
          continue;
        }
        this.readEnded();
        for (const [key, raw] of reply ?? []) {
          const stream = this.streams.get(key);
          if (!stream || raw.length === 0) continue;
          const entries = toEntries(raw);
          stream.lastId = entries[entries.length - 1]?.id ?? stream.lastId;
          for (const listener of [...stream.listeners]) listener(entries);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The XREAD in flight has returned: an id found by name was for that read only. */
  private readEnded(): void {
    this.reading = undefined;
    if (this.idLookedUp) {
      this.idLookedUp = false;
      this.clientId = undefined;
    }
  }

  /**
   * The connection the XREAD of `key` blocks on: the reader itself, or on a cluster the reader's
   * connection to the master serving the key's slot (the cluster client itself while its slot
   * table does not name one: then no UNBLOCK is sent, and a new stream waits for the BLOCK time).
   */
  private readingConnection(key: string): Redis | Cluster {
    if (!(this.reader instanceof Cluster)) return this.reader;
    // The slot as ioredis computes it for the XREAD (hash tag included).
    const slot = new Command("exists", [key]).getSlot() as number;
    this.slot = slot;
    return this.masterOf(slot) ?? this.reader;
  }

  /** The reader's connection to the master its slot table names for `slot`. */
  private masterOf(slot: number): Redis | undefined {
    if (!(this.reader instanceof Cluster)) return undefined;
    const [nodeKey] = this.reader.slots[slot] ?? [];
    return nodeKey === undefined
      ? undefined
      : this.reader.nodes("master").find((each) => nodeKeyOf(each) === nodeKey);
  }

  /** `connection`'s node as `client` reaches it (a cluster node of its own), or `client` itself. */
  private sameNode(
    client: RedisClient,
    connection: Redis | Cluster | undefined,
  ): Redis | Cluster | undefined {
    if (!(client instanceof Cluster)) return client;
    if (!connection || connection instanceof Cluster) return undefined;
    const nodeKey = nodeKeyOf(connection);
    return client.nodes("master").find((each) => nodeKeyOf(each) === nodeKey);
  }

  close(): void {
    this.closed = true;
    this.interrupt();
    this.reader.disconnect();
  }
}

/** The name the reader's connections give themselves (CLIENT SETNAME, on every (re)connect). */
function connectionNameOf(reader: RedisClient): string | undefined {
  const options = reader instanceof Cluster ? reader.options.redisOptions : reader.options;
  return options?.connectionName || undefined;
}

/**
 * Of the connections named `name` blocked on an XREAD on `node` (a half-open old one may linger),
 * the newest one's id, from CLIENT LIST.
 */
async function blockedReaderId(node: Redis | Cluster, name: string): Promise<number | undefined> {
  const list = String(await node.call("CLIENT", "LIST", "TYPE", "normal"));
  let newest: number | undefined;
  for (const line of list.split("\n")) {
    const fields = new Map(line.split(" ").map((field) => field.split("=", 2) as [string, string]));
    if (fields.get("name") !== name || fields.get("cmd") !== "xread") continue;
    if (!fields.get("flags")?.includes("b")) continue;
    const id = Number(fields.get("id"));
    if (Number.isSafeInteger(id) && (newest === undefined || id > newest)) newest = id;
  }
  return newest;
}

/** A cluster node's key as ioredis's slot table names it: `host:port`. */
function nodeKeyOf(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

const MAX_STREAM_ID_PART = 2n ** 64n - 1n;

/** Whether `text` is a Redis stream id ("ms-seq", each part a 64-bit unsigned integer). */
export function isStreamId(text: string): boolean {
  const match = /^(\d{1,20})-(\d{1,20})$/.exec(text);
  return (
    match !== null &&
    BigInt(match[1] as string) <= MAX_STREAM_ID_PART &&
    BigInt(match[2] as string) <= MAX_STREAM_ID_PART
  );
}

/** Orders Redis stream ids ("ms-seq"). */
export function compareIds(left: string, right: string): number {
  const [leftMs = 0, leftSeq = 0] = left.split("-").map(Number);
  const [rightMs = 0, rightSeq = 0] = right.split("-").map(Number);
  return leftMs - rightMs || leftSeq - rightSeq;
}
