import type { Config } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { notFound } from "../plugins/http-error.js";
import { breakerIdFor } from "../providers/provider-status.js";
import type { ProviderStatusStore } from "../providers/provider-status-store.js";

export interface ProviderRoutesDeps {
  config: Config;
  providers: ProviderStatusStore;
}

const overrideBody = z.strictObject({
  state: z.enum(["open", "closed", "auto"], { error: 'state must be "open", "closed" or "auto"' }),
});

export function registerProviderRoutes(app: FastifyInstance, deps: ProviderRoutesDeps): void {
  const { config, providers } = deps;
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get("/v1/providers", async () => providers.read());

  routes.post(
    "/v1/providers/:id/breaker",
    {
      schema: { params: z.object({ id: z.string().min(1) }), body: overrideBody },
      // Only a tenant with `admin: true` in the config may override breakers.
      config: { access: "admin" },
    },
    async (request) => {
      const breakerId = breakerIdFor(config, request.params.id);
      if (!breakerId) {
        throw notFound(`no provider (or model with its own breaker) with id ${request.params.id}`);
      }
      // Every tenant reads the breaker log (GET /v1/providers): it says an admin did it, not which one (the log line does).
      const why = `manual override by an admin: ${request.body.state}`;
      await providers.override(breakerId, request.body.state, why);
      request.log.warn({ breaker: breakerId, state: request.body.state, tenant: request.tenant }, why);
      const status = await providers.read();
      return status.data.find((provider) => provider.id === request.params.id) ?? status;
    },
  );
}
