import { type Config, sha256Hex } from "@cascade/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { HttpError } from "./http-error.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The tenant the request's API key belongs to ("default" in open mode). */
    tenant: string;
  }
}

export const OPEN_MODE_TENANT = "default";

/**
 * Bearer API keys, compared as SHA-256 digests so the process never holds a lookup table of raw
 * keys. Applies to /v1/*; operations endpoints stay open for probes.
 */
export function registerAuth(app: FastifyInstance, config: Config): void {
  const tenantByHash = new Map<string, string>();
  for (const tenant of config.tenants.values()) {
    for (const hash of tenant.keyHashes) tenantByHash.set(hash, tenant.id);
  }
  app.decorateRequest("tenant", "");
  app.addHook("onRequest", async (request: FastifyRequest) => {
    if (!request.url.startsWith("/v1/")) return;
    if (config.openMode) {
      request.tenant = OPEN_MODE_TENANT;
      return;
    }
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      throw new HttpError(
        401,
        "authentication_error",
        "missing API key: send it as the header `Authorization: Bearer <key>`",
        undefined,
        {
          "www-authenticate": "Bearer",
        },
      );
    }
    const tenant = tenantByHash.get(sha256Hex(match[1]));
    if (!tenant) {
      throw new HttpError(401, "authentication_error", "invalid API key", undefined, {
        "www-authenticate": "Bearer",
      });
    }
    request.tenant = tenant;
  });
}
