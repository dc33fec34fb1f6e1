import type { Clock, Config, Keys, RedisClient } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { notFound } from "../plugins/http-error.js";
import { breakerIdFor, readProviderStatus } from "../providers/provider-status.js";

export interface ProviderRoutesDeps {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  clock: Clock;
}

const overrideBody = z.strictObject({
  state: z.enum(["open", "closed", "auto"], { error: 'state must be "open", "closed" or "auto"' }),
});

/** Records a manual override in the breaker's hash (read by admit.lua on every call). */
const OVERRIDE_LUA = `
local key = KEYS[1]
local fields = redis.call('HMGET', key, 'state', 'forced', 'log')
local from = fields[2] or fields[1] or 'closed'
local log = cjson.decode(fields[3] or '[]')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
table.insert(log, 1, { at = now, from = from, to = ARGV[1] == 'auto' and (fields[1] or 'closed') or ARGV[1], why = ARGV[2] })
if #log > 20 then table.remove(log) end
if ARGV[1] == 'auto' then redis.call('HDEL', key, 'forced') else redis.call('HSET', key, 'forced', ARGV[1]) end
redis.call('HSET', key, 'log', cjson.encode(log))
return 1
`;

export function registerProviderRoutes(app: FastifyInstance, deps: ProviderRoutesDeps): void {
  const { config, redis, keys, clock } = deps;
  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get("/v1/providers", async () => readProviderStatus(redis, config, keys, clock.now()));

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
      await redis.eval(OVERRIDE_LUA, 1, keys.breaker(breakerId), request.body.state, why);
      await redis.publish(keys.breakerChannel, `${breakerId}:${request.body.state}`);
      request.log.warn({ breaker: breakerId, state: request.body.state, tenant: request.tenant }, why);
      const status = await readProviderStatus(redis, config, keys, clock.now());
      return status.data.find((provider) => provider.id === request.params.id) ?? status;
    },
  );
}
