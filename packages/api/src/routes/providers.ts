import type { Clock, Config, Keys, RedisClient } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { notFound } from "../plugins/http-error.js";
import { defineBreakerOverride } from "../providers/breaker-override.js";
import { breakerIdFor, readProviderStatus } from "../providers/provider-status.js";

export interface ProviderRoutesDeps {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  /** Unused: the status view takes its time from Redis (TIME), like the scripts that wrote it. */
  clock?: Clock;
}

const overrideBody = z.strictObject({
  state: z.enum(["open", "closed", "auto"], { error: 'state must be "open", "closed" or "auto"' }),
});

export function registerProviderRoutes(app: FastifyInstance, deps: ProviderRoutesDeps): void {
  const { config, redis, keys } = deps;
  const overrideBreaker = defineBreakerOverride(redis);
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get("/v1/providers", async () => readProviderStatus(redis, config, keys));

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
      const why = `manual override by tenant ${request.tenant}: ${request.body.state}`;
      await overrideBreaker(keys.breaker(breakerId), request.body.state, why);
      await redis.publish(keys.breakerChannel, `${breakerId}:${request.body.state}`);
      request.log.warn({ breaker: breakerId, state: request.body.state, tenant: request.tenant }, why);
      const status = await readProviderStatus(redis, config, keys);
      return status.data.find((provider) => provider.id === request.params.id) ?? status;
    },
  );
}
