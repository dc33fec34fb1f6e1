import type { ConfigFile, HopConfig } from "../config/schema.js";
import type { ChatRequest } from "../schemas/chat-request.js";

export const DEFAULT_DEADLINE_MS = 10 * 60 * 1000;
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface ResolvedChain {
  /** The route id the chain came from, or null for an explicit `models` list or a model's fallbacks. */
  route: string | null;
  chain: HopConfig[];
  policy: {
    on_content_filter: "fallback" | "fail";
    on_bad_request: "fail" | "fallback";
    on_missing_vision: "skip" | "strip";
  };
  deadline_ms: number;
}

/** A chain that cannot be resolved: the API answers 400 naming `param`. */
export class ChainResolutionError extends Error {
  constructor(
    readonly param: string,
    message: string,
    /** OpenAI's `error.code`: `model_not_found` for a name nothing configures, null for none given. */
    readonly code: "model_not_found" | null = "model_not_found",
  ) {
    super(message);
    this.name = "ChainResolutionError";
  }
}

const defaultPolicy = {
  on_content_filter: "fallback",
  on_bad_request: "fail",
  on_missing_vision: "skip",
} as const;

function listIds(ids: string[]): string {
  const shown = ids.slice(0, 20).join(", ");
  return ids.length > 20 ? `${shown}, ...` : shown || "none";
}

function fromRoute(config: ConfigFile, id: string, deadline?: number): ResolvedChain {
  const route = config.routes[id];
  if (!route) throw new Error(`route ${id} vanished`);
  return {
    route: id,
    chain: route.chain.map((hop) => ({ ...hop })),
    policy: {
      on_content_filter: route.on_content_filter ?? defaultPolicy.on_content_filter,
      on_bad_request: route.on_bad_request ?? defaultPolicy.on_bad_request,
      on_missing_vision: route.on_missing_vision ?? defaultPolicy.on_missing_vision,
    },
    deadline_ms: deadline ?? route.deadline_ms ?? DEFAULT_DEADLINE_MS,
  };
}

function fromModels(ids: string[], deadline?: number): ResolvedChain {
  return {
    route: null,
    chain: [...new Set(ids)].map((model) => ({ model })),
    policy: { ...defaultPolicy },
    deadline_ms: deadline ?? DEFAULT_DEADLINE_MS,
  };
}

/**
 * Resolves a job's fallback chain, first match wins (contract, POST /v1/jobs): `models` →
 * `route` → `request.model` naming a route → `request.model` naming a model, then its
 * `fallbacks` → route `default`. Unknown names throw ChainResolutionError.
 */
export function resolveChain(
  config: ConfigFile,
  input: { models?: string[]; route?: string; request: Pick<ChatRequest, "model">; deadline_ms?: number },
): ResolvedChain {
  const { deadline_ms: deadline } = input;
  // `route` is Cascade's own field: a wrong one is refused even where `models` wins. (OpenAI's
  // `request.model` is only read when it decides the chain: a client may send any name there.)
  if (input.route !== undefined && !config.routes[input.route]) {
    throw new ChainResolutionError(
      "route",
      `route: unknown route "${input.route}"; configured routes: ${listIds(Object.keys(config.routes))}`,
    );
  }
  if (input.models) {
    input.models.forEach((model, index) => {
      if (!config.models[model]) {
        throw new ChainResolutionError(
          `models[${index}]`,
          `models[${index}]: unknown model "${model}"; configured models: ${listIds(Object.keys(config.models))}`,
        );
      }
    });
    return fromModels(input.models, deadline);
  }
  if (input.route !== undefined) return fromRoute(config, input.route, deadline);
  const named = input.request.model;
  if (named !== undefined) {
    if (config.routes[named]) return fromRoute(config, named, deadline);
    if (config.models[named]) return fromModels([named, ...(config.fallbacks[named] ?? [])], deadline);
    throw new ChainResolutionError(
      "request.model",
      `request.model: "${named}" is neither a configured model nor a route; models: ${listIds(Object.keys(config.models))}; routes: ${listIds(Object.keys(config.routes))}`,
    );
  }
  if (config.routes.default) return fromRoute(config, "default", deadline);
  throw new ChainResolutionError(
    "request.model",
    "request.model, route or models is required: this config has no route named default",
    null,
  );
}
