import { type Config, sha256Hex } from "@cascade/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { HttpError } from "./http-error.js";

/**
 * Who may call a route, declared by the route itself (`config: { access }`):
 * - `public`: anyone (probes, the OpenAPI page);
 * - `tenant` (the default for every route that does not say): a valid API key of any tenant;
 * - `admin`: a valid API key of a tenant with `admin: true`.
 * Open mode (no tenants configured) lets every request in as tenant "default".
 */
export const ROUTE_ACCESS = ["public", "tenant", "admin"] as const;
export type RouteAccess = (typeof ROUTE_ACCESS)[number];

declare module "fastify" {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /**
     * The tenant the request's API key belongs to ("default" in open mode). Reading it on a
     * request that was not authenticated throws: a handler can never act as no tenant.
     */
    readonly tenant: string;
  }
}

export const OPEN_MODE_TENANT = "default";

const authenticatedTenant = Symbol("cascade.tenant");

type AuthenticatedRequest = FastifyRequest & { [authenticatedTenant]?: string };

const unauthorized = (message: string) =>
  new HttpError(401, "authentication_error", message, undefined, { "www-authenticate": "Bearer" });

/**
 * Bearer API keys, compared as SHA-256 digests so the process never holds a lookup table of raw
 * keys. The decision is taken from the route Fastify matched (after it decoded the path), never
 * from the URL text: `/%761/jobs` is `/v1/jobs` to the router, so it must be to auth as well.
 */
export function registerAuth(app: FastifyInstance, config: Config): void {
  const tenantByHash = new Map<string, string>();
  for (const tenant of config.tenants.values()) {
    for (const hash of tenant.keyHashes) tenantByHash.set(hash, tenant.id);
  }
  const admins = new Set(
    [...config.tenants.values()].filter((tenant) => tenant.config.admin).map((tenant) => tenant.id),
  );

  app.decorateRequest("tenant", {
    getter(this: AuthenticatedRequest): string {
      const tenant = this[authenticatedTenant];
      if (!tenant) throw new Error("request.tenant read on a route that did not authenticate");
      return tenant;
    },
  });

  app.addHook("onRequest", async (request: FastifyRequest) => {
    // No route matched: the not-found handler answers 404/405 and touches no tenant's data.
    if (request.is404) return;
    const access = request.routeOptions.config.access ?? "tenant";
    if (access === "public") return;
    const tenant = config.openMode ? OPEN_MODE_TENANT : tenantOf(request, tenantByHash);
    if (access === "admin" && !config.openMode && !admins.has(tenant)) {
      throw new HttpError(403, "permission_error", "this endpoint needs the API key of an admin tenant");
    }
    (request as AuthenticatedRequest)[authenticatedTenant] = tenant;
  });
}

function tenantOf(request: FastifyRequest, tenantByHash: Map<string, string>): string {
  const header = request.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match?.[1]) {
    throw unauthorized("missing API key: send it as the header `Authorization: Bearer <key>`");
  }
  const tenant = tenantByHash.get(sha256Hex(match[1]));
  if (!tenant) throw unauthorized("invalid API key");
  return tenant;
}

/**
 * Marks every route registered inside `instance` (and its children) public: for plugins whose
 * routes we do not declare ourselves, such as the OpenAPI UI.
 */
export function markRoutesPublic(instance: FastifyInstance): void {
  instance.addHook("onRoute", (route) => {
    route.config = { ...(route.config ?? {}), access: "public" };
  });
}
