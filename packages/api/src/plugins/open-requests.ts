import type { Config } from "@cascade/shared";
import type { FastifyReply, FastifyRequest } from "fastify";
import { onConnectionClose } from "./connection-close.js";
import { HttpError } from "./http-error.js";

/** A tenant's requests held open at once on one API process when its config does not say. */
export const DEFAULT_MAX_OPEN_REQUESTS = 1000;

/**
 * The requests each tenant holds open on this process: gateway calls, job event streams and
 * `GET /v1/jobs/:id?wait=` (docs/decisions/0035-open-requests-per-tenant.md). Each costs memory
 * and a socket for as long as its client keeps it (an event stream ~32 KiB, for hours), so one
 * tenant's many could take the process from every other; past `tenants.<id>.max_open_requests`
 * (default 1000) a tenant's next one is a 429 until one of its own ends. Open mode (no tenants)
 * has nobody to keep apart: no cap.
 */
export class OpenRequests {
  private readonly open = new Map<string, number>();
  private readonly limits = new Map<string, number>();

  constructor(config: Config) {
    if (config.openMode) return;
    for (const tenant of config.tenants.values())
      this.limits.set(tenant.id, tenant.config.max_open_requests ?? DEFAULT_MAX_OPEN_REQUESTS);
  }

  /**
   * Counts `request` as one of its tenant's open requests until its response closes (ended or
   * its connection gone); throws the 429 when the tenant already holds its limit.
   */
  hold(request: FastifyRequest, reply: FastifyReply): void {
    const tenant = request.tenant;
    const limit = this.limits.get(tenant);
    // A client gone already (during the body's read) has had its close: counting it would leak.
    if (limit === undefined || reply.raw.destroyed || request.raw.socket?.destroyed) return;
    const held = this.open.get(tenant) ?? 0;
    if (held >= limit) {
      throw new HttpError(
        429,
        "rate_limit_error",
        `this tenant holds ${held} requests open on this server, its limit (tenants.${tenant}.max_open_requests): ` +
          "end one (an event stream, a gateway call, a waiting GET) or try again shortly",
        undefined,
        { "retry-after": "1" },
        "too_many_open_requests",
      );
    }
    this.open.set(tenant, held + 1);
    let released = false;
    let forget = () => {};
    const release = () => {
      if (released) return;
      released = true;
      reply.raw.off("close", release);
      forget();
      const left = (this.open.get(tenant) ?? 1) - 1;
      if (left > 0) this.open.set(tenant, left);
      else this.open.delete(tenant);
    };
    reply.raw.once("close", release);
    // A pipelined request whose connection dropped before its answer: its response never closes.
    forget = onConnectionClose(request, release);
  }

  /** The tenant's requests open now (tests, metrics). */
  count(tenant: string): number {
    return this.open.get(tenant) ?? 0;
  }
}
