import { type Config, sha256Hex } from "@cascade/shared";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hostProblem, type UnroutedAnswer } from "./error-handler.js";
import { declaresBody, HttpError, headerLines } from "./http-error.js";
import { closeAfterAnswer } from "./lingering-close.js";

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
    /**
     * A page a browser opens (bull-board): besides the bearer header, it takes the API key as the
     * password of HTTP Basic auth, and its 401 asks for that so the browser prompts
     * (docs/decisions/0018-admin-pages-auth.md).
     */
    basicAuth?: boolean;
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

const BASIC_CHALLENGE = 'Basic realm="Cascade admin", charset="UTF-8"';

const unauthorized = (message: string, basic = false) =>
  new HttpError(401, "authentication_error", message, undefined, {
    "www-authenticate": basic ? BASIC_CHALLENGE : "Bearer",
  });

/**
 * Bearer API keys, compared as SHA-256 digests so the process never holds a lookup table of raw
 * keys. The decision is taken from the route Fastify matched (after it decoded the path), never
 * from the URL text: `/%761/jobs` is `/v1/jobs` to the router, so it must be to auth as well.
 */
export function registerAuth(app: FastifyInstance, config: Config, unrouted: UnroutedAnswer): void {
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

  // Callback style (no promise per request); a throw here reaches Fastify's error handler.
  app.addHook("onRequest", (request: FastifyRequest, reply, done) => {
    try {
      authenticate(request, reply);
    } catch (error) {
      // Refused before its body was read: close the connection after the answer. Kept alive,
      // Node would read and discard the rest of the declared body to reuse the socket, so a
      // client with no key could hold it (and a file descriptor) for the whole request timeout
      // (an hour) by trickling bytes.
      if (declaresBody(request)) closeAfterAnswer(request, reply);
      return done(error as Error);
    }
    done();
  });

  function authenticate(request: FastifyRequest, reply: FastifyReply): void {
    // Checked here, the one hook every request passes (a hook of its own costs every request).
    const badHost = hostProblem(request);
    if (badHost) {
      closeAfterAnswer(request, reply);
      throw new HttpError(400, "invalid_request_error", badHost, "host");
    }
    // No route matched: the not-found handler answers 404/405 and touches no tenant's data. It
    // runs once the body is read: one that declares a body is answered now (and closed, above),
    // so nobody holds a connection by trickling a body to a path that does not exist.
    if (request.is404) {
      if (declaresBody(request)) throw unrouted(request);
      return;
    }
    const access = request.routeOptions.config.access ?? "tenant";
    if (access === "public") {
      // No public route reads a body (health checks, pages): one declared is not read either.
      // Kept alive, Node would read and discard it for up to the request timeout, so anyone
      // could hold a connection by trickling one; the answer closes it instead.
      if (declaresBody(request)) closeAfterAnswer(request, reply);
      return;
    }
    const basic = request.routeOptions.config.basicAuth === true;
    const tenant = config.openMode ? OPEN_MODE_TENANT : tenantOf(request, tenantByHash, basic);
    if (access === "admin" && !config.openMode && !admins.has(tenant)) {
      const message = "this endpoint needs the API key of an admin tenant";
      // A browser that sent a non-admin key would otherwise keep sending it: ask again instead.
      if (basic && /^Basic\s/i.test(request.headers.authorization ?? "")) throw unauthorized(message, true);
      throw new HttpError(403, "permission_error", message);
    }
    (request as AuthenticatedRequest)[authenticatedTenant] = tenant;
  }
}

function tenantOf(request: FastifyRequest, tenantByHash: Map<string, string>, basic: boolean): string {
  const header = request.headers.authorization ?? "";
  // Node reads only the first of two Authorization lines: which credential was meant is unknown.
  const lines = header ? headerLines(request, "authorization") : 0;
  if (lines > 1) throw unauthorized(`send one Authorization header, not ${lines}`, basic);
  const key = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? (basic ? basicPassword(header) : undefined);
  if (!key) {
    const also = basic ? " or as the password of HTTP Basic auth" : "";
    throw unauthorized(
      `missing API key: send it as the header \`Authorization: Bearer <key>\`${also}`,
      basic,
    );
  }
  const tenant = tenantByHash.get(sha256Hex(key));
  if (!tenant) throw unauthorized("invalid API key", basic);
  return tenant;
}

/** The password of `Authorization: Basic base64(user:password)` (the user name is ignored). */
function basicPassword(header: string): string | undefined {
  const encoded = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)?.[1];
  if (!encoded) return undefined;
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : undefined;
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
