import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { ConfigError } from "../errors/config-error.js";

export type RedisClient = Redis | Cluster;

/** REDIS_URL without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    // Not a URL: everything up to the last "@" may be credentials (a password may hold "/" or "@").
    return url.replace(/^([a-z]+:\/\/).*@/i, "$1***@");
  }
}

const baseOptions: RedisOptions = {
  // BullMQ workers block on Redis; they need unlimited retries per request to survive outages.
  maxRetriesPerRequest: null,
  enableReadyCheck: true,
  retryStrategy: (times) => Math.min(times * 200, 2000),
};

export interface ConnectionOptions extends RedisOptions {
  /** Connect to a Redis Cluster through this seed node. */
  cluster?: boolean;
  /**
   * Commands written in one turn of the event loop leave in one socket write (one syscall for the
   * batch instead of one per command), and none waits for the replies of the ones before it, as
   * ioredis' auto-pipelining makes a batch wait for the last one's. See docs/decisions/0025.
   */
  coalesceWrites?: boolean;
  /**
   * With `coalesceWrites`: a write made this long (ms) or longer after the first one held sends
   * what is held (checked at each write, no timer); default: held for the whole turn.
   */
  coalesceMaxHoldMs?: number;
}

/** On a coalescing socket: sends what it holds now (see flushCoalescedWrites). */
const FLUSH = Symbol("cascade.coalescedWritesFlush");

/**
 * The API's bound on holding coalesced writes (and FairTags batches of adds) for the turn's end,
 * ms: a write (an add) made this long or longer after the first one held sends the batch then,
 * itself included or first of the next (checked at each write, no timer). A busy
 * API's long turn (dozens of requests) otherwise holds its first writes for all of it, and their
 * replies miss the next turn. The worker holds for the whole turn: the bound measured no gain
 * there (ADR 0025's revision).
 */
export const COALESCE_MAX_HOLD_MS = 0.25;

type CoalescingSocket = Socket & { [FLUSH]?: () => void };

/**
 * On each socket the client opens (a reconnect opens a new one): the first write of an
 * event-loop turn corks the socket and the turn's check phase (setImmediate) uncorks it, so Node
 * sends everything written meanwhile with one writev; a write made `maxHoldMs` or more after the
 * first one held sends what is held first and starts a new batch. Only when bytes leave
 * changes; their order, and so the order of the replies, does not.
 */
function coalesceWrites(client: Redis, maxHoldMs: number): void {
  client.on("connect", () => {
    const socket = client.stream as CoalescingSocket | undefined;
    if (!socket || socket[FLUSH]) return;
    let corked = false;
    let corkedAt = 0;
    let uncorkQueued = false;
    const uncork = () => {
      if (!corked) return;
      corked = false;
      socket.uncork();
    };
    const turnEnded = () => {
      uncorkQueued = false;
      uncork();
    };
    socket[FLUSH] = uncork;
    const write = socket.write;
    socket.write = function (this: Socket, ...args: unknown[]) {
      if (corked && performance.now() - corkedAt >= maxHoldMs) uncork();
      if (!corked) {
        corked = true;
        corkedAt = performance.now();
        socket.cork();
        if (!uncorkQueued) {
          uncorkQueued = true;
          setImmediate(turnEnded);
        }
      }
      return (write as (...rest: unknown[]) => boolean).apply(this, args);
    } as Socket["write"];
  });
}

/**
 * Sends now what a coalescing connection holds for the end of this turn (on every node of a
 * cluster client); nothing on one that does not coalesce. For writes made in the check phase
 * itself (a setImmediate), which would otherwise wait for the next turn's: a batch sent there
 * (FairTags's adds) leaves at once.
 */
export function flushCoalescedWrites(client: RedisClient): void {
  const clients = client instanceof Cluster ? client.nodes() : [client];
  for (const node of clients) (node.stream as CoalescingSocket | undefined)?.[FLUSH]?.();
}

/** A URL's host as a socket takes it: an IPv6 address comes bracketed in a URL, bare here. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

/**
 * The redis-cli command line that reaches the Redis `url` names (host, port, database, TLS), for
 * messages telling an operator what to run; its password is never shown (`--askpass` asks for it).
 */
export function redisCliFor(url: string): string {
  try {
    const parsed = new URL(url);
    const host = bareHost(parsed) || "127.0.0.1";
    const parts = ["redis-cli", "-h", host, "-p", parsed.port || "6379"];
    if (parsed.protocol === "rediss:") parts.push("--tls");
    if (parsed.username) parts.push("--user", decodeURIComponent(parsed.username));
    // It asks for the password rather than have it typed on a command line.
    if (parsed.password) parts.push("--askpass");
    const database = parsed.pathname.replace(/^\//, "");
    if (database && database !== "0") parts.push("-n", database);
    return parts.join(" ");
  } catch {
    return "redis-cli";
  }
}

/** A plain connection (or a Cluster client when the seed node reports cluster mode). */
export function createRedis(url: string, options: ConnectionOptions = {}): RedisClient {
  const { cluster, coalesceWrites: coalescing, coalesceMaxHoldMs, ...rest } = options;
  const maxHoldMs = coalesceMaxHoldMs ?? Number.POSITIVE_INFINITY;
  if (cluster) {
    const parsed = new URL(url);
    // As ioredis reads a URL: percent-encoded credentials; options given here win over the URL's.
    const fromUrl = (value: string) => (value ? decodeURIComponent(value) : undefined);
    const client = new Cluster([{ host: bareHost(parsed), port: Number(parsed.port || 6379) }], {
      // The cluster client keeps its own offline queue, in front of the nodes' connections.
      enableOfflineQueue: rest.enableOfflineQueue ?? true,
      redisOptions: {
        ...baseOptions,
        password: fromUrl(parsed.password),
        username: fromUrl(parsed.username),
        tls: parsed.protocol === "rediss:" ? {} : undefined,
        ...rest,
      },
    });
    if (coalescing) client.on("+node", (node: Redis) => coalesceWrites(node, maxHoldMs));
    return client;
  }
  const client = new Redis(url, { ...baseOptions, ...rest });
  if (coalescing) coalesceWrites(client, maxHoldMs);
  return client;
}

/**
 * The database REDIS_URL selects exists: ioredis reports a failed SELECT only as an error event
 * and goes on in database 0, where every key would then land.
 */
async function checkDatabase(probe: Redis, database: string, shown: string): Promise<void> {
  // As ioredis reads it (`parseInt`): `/2x` selects 2, `/00` is 0.
  const index = Number.parseInt(database, 10);
  // Database 0 is every connection's own: ioredis sends no SELECT for it (proxies that refuse
  // SELECT work), so neither does the check.
  if (index === 0) return;
  const refused =
    Number.isSafeInteger(index) && index >= 0
      ? await probe.select(index).then(
          () => undefined,
          (error: Error) => error.message,
        )
      : "not a database number";
  if (refused !== undefined) {
    throw new ConfigError(
      `REDIS_URL selects database ${database}, which Redis at ${shown} does not have (${refused}): end REDIS_URL with /0 … /<databases - 1> (redis-cli CONFIG GET databases), or raise databases in redis.conf`,
    );
  }
}

/**
 * A master with fewer replicas connected than API_REPLICA_ACKS asks for. Replicas come and go (a
 * restart, a failover), so this is a warning, not a refusal; nothing is said of a seed that is
 * itself a replica (a cluster's other masters are not asked: each may have its own count).
 */
async function replicaShortfall(probe: Redis, wanted: number, shown: string): Promise<string | undefined> {
  const info = await probe.info("replication").catch(() => "");
  if (!/^role:master/m.test(info)) return undefined;
  const connected = Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0);
  if (connected >= wanted) return undefined;
  return `WARNING: API_REPLICA_ACKS=${wanted} but Redis at ${shown} has ${connected} replica${connected === 1 ? "" : "s"} connected: each write request will wait API_REPLICA_WAIT_MS and be answered unconfirmed until enough replicas connect; lower API_REPLICA_ACKS to ${connected === 0 ? "0 (off)" : connected} or add replicas`;
}

export interface RedisCheck {
  cluster: boolean;
  warnings: string[];
}

/**
 * Startup check: Redis reachable within `timeoutMs`, and `maxmemory-policy` is `noeviction`
 * (an evicting Redis silently loses jobs). Throws ConfigError with one line naming the fix.
 * With `replicaAcks` (the API's API_REPLICA_ACKS), a master with fewer replicas connected is a
 * warning: every write request would wait its API_REPLICA_WAIT_MS and go out unconfirmed.
 */
export async function checkRedis(
  url: string,
  options: { timeoutMs?: number; replicaAcks?: number } = {},
): Promise<RedisCheck> {
  const { timeoutMs = 5000 } = options;
  const shown = redactRedisUrl(url);
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
  });
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  // connectTimeout ends at the TCP connection: a frozen Redis (or another service on its port)
  // accepts it and answers nothing, which would hold the ready check and every command of the
  // check for ever. Past timeoutMs without an answer, a PING of our own on a fresh connection says
  // whether anything answers there: a Redis still loading its data does (-LOADING) and is waited
  // for, as ioredis's ready check waits; silence fails the check.
  const deadline = new Promise<never>((_resolve, reject) => {
    const check = async () => {
      const reply = await firstReplyTo(url, Math.min(timeoutMs, 2000));
      if (settled) return;
      if (reply !== undefined) {
        timer = setTimeout(check, timeoutMs);
        return;
      }
      probe.disconnect();
      reject(
        new ConfigError(
          `Redis at ${shown} accepted the connection but did not answer (a frozen or overloaded Redis, or another service on that port): check that REDIS_URL points at a Redis that answers \`${redisCliFor(url)} PING\``,
        ),
      );
    };
    timer = setTimeout(check, timeoutMs);
  });
  try {
    return await Promise.race([probeRedis(probe, url, shown, options), deadline]);
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

/** How long a Redis that could not be reached is asked over the other protocol (TLS or not). */
const OTHER_PROTOCOL_PROBE_MS = 1_000;

/**
 * The first line a server at `url` answers to a PING on a connection of its own (any answer:
 * PONG, -LOADING, -NOAUTH), or undefined when none comes within `timeoutMs`.
 */
function firstReplyTo(url: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const parsed = new URL(url);
    const host = parsed.hostname.replace(/^\[|\]$/g, "");
    const port = Number(parsed.port || 6379);
    const socket =
      parsed.protocol === "rediss:"
        ? // SNI takes a name, never an address (Node warns on one, before the check's own line).
          tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), rejectUnauthorized: false })
        : netConnect({ host, port });
    const done = (reply: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once(parsed.protocol === "rediss:" ? "secureConnect" : "connect", () => socket.write("PING\r\n"));
    socket.once("data", (data: Buffer) => done(data.toString("latin1").split("\r\n")[0]));
    socket.once("error", () => done(undefined));
  });
}

async function probeRedis(
  probe: Redis,
  url: string,
  shown: string,
  options: { replicaAcks?: number },
): Promise<RedisCheck> {
  const { replicaAcks = 0 } = options;
  // ioredis rejects connect() with a generic "Connection is closed"; the cause comes as an event.
  let lastError: Error | undefined;
  probe.on("error", (error: Error) => {
    lastError = error;
  });
  try {
    await probe.connect();
  } catch (error) {
    probe.disconnect();
    const raw = lastError ?? (error as Error);
    // One line, whatever the cause says (OpenSSL's messages end in a newline).
    const cause = { message: raw.message.replace(/\s+/g, " ").trim() };
    // Reached, but refused our credentials: the fix is the password, not starting a Redis.
    if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(cause.message)) {
      throw new ConfigError(
        `Redis at ${shown} refused the credentials in REDIS_URL (${cause.message}); set REDIS_URL to redis://<user>:<password>@host:port with the right ones`,
      );
    }
    // Reached, but over the other protocol: a TLS handshake a plain Redis never answers (or the
    // reverse) looks like a Redis that is not there.
    const tls = new URL(url).protocol === "rediss:";
    const other = tls ? url.replace(/^rediss:/i, "redis:") : url.replace(/^redis:/i, "rediss:");
    // A Redis's answer to PING (+PONG, -NOAUTH, -LOADING), not any server's first line (an SSH
    // banner, an HTTP 400): only then is the protocol the fix.
    if (/^[+-]/.test((await firstReplyTo(other, OTHER_PROTOCOL_PROBE_MS)) ?? "")) {
      throw new ConfigError(
        tls
          ? `Redis at ${shown} answers without TLS, but REDIS_URL says rediss:// (TLS); use redis:// for this port, or give the port of a TLS listener`
          : `Redis at ${shown} answers only over TLS, but REDIS_URL says redis://; use rediss:// for this port`,
      );
    }
    // Something answered, but not in Redis's protocol (an HTTP server's "HTTP/1.1 400", an SSH
    // banner): ioredis's parser says "Unknown RESP type 72 "H". Please report this."
    if (/Unknown RESP type|Protocol error/i.test(cause.message)) {
      throw new ConfigError(
        `The server at ${shown} is not Redis: it answered in another protocol; set REDIS_URL to your Redis's host and port (6379 by default)`,
      );
    }
    throw new ConfigError(
      `Cannot reach Redis at ${shown} (${cause.message}); start Redis (npm start does it for you) or set REDIS_URL to a reachable Redis`,
    );
  }
  const warnings: string[] = [];
  try {
    const info = await probe.info("cluster").catch(() => "");
    const cluster = /cluster_enabled:1/.test(info);
    // A cluster node is then reached through a cluster client (createRedis), which has database 0 only.
    // As ioredis reads it: the first path segment (`/2`, `/2/` alike).
    const database = new URL(url).pathname.split("/")[1] ?? "";
    if (cluster && database !== "" && Number.parseInt(database, 10) !== 0) {
      throw new ConfigError(
        `REDIS_URL selects database ${database}, but Redis at ${shown} is a Redis Cluster node, which has database 0 only: remove /${database} from REDIS_URL (give each deployment its own CASCADE_REDIS_PREFIX instead)`,
      );
    }
    if (!cluster && database !== "") await checkDatabase(probe, database, shown);
    let policy: string | undefined;
    try {
      const reply = (await probe.config("GET", "maxmemory-policy")) as string[];
      policy = reply[1];
    } catch (error) {
      warnings.push(
        `WARNING: cannot read maxmemory-policy from Redis at ${shown} (${(error as Error).message}); make sure it is noeviction, or evicted keys will be lost jobs`,
      );
    }
    if (policy !== undefined && policy !== "noeviction") {
      throw new ConfigError(
        `Redis at ${shown} has maxmemory-policy=${policy}; Cascade needs noeviction (evicted keys are lost jobs): run \`${redisCliFor(url)} CONFIG SET maxmemory-policy noeviction\` and set it in redis.conf`,
      );
    }
    if (replicaAcks > 0) {
      const warning = await replicaShortfall(probe, replicaAcks, shown);
      if (warning) warnings.push(warning);
    }
    return { cluster, warnings };
  } finally {
    probe.disconnect();
  }
}
