import type { LanguageModelV3, LanguageModelV3CallOptions, SharedV3Warning } from "@ai-sdk/provider";
import type { PostTarget } from "./post-json.js";

/**
 * The parts of @ai-sdk/openai's chat model (`OpenAIChatLanguageModel`, 3.0.x) the lean client
 * reuses: `getArgs` builds the request body from the call options (messages, tools, response
 * formats, the per-model rules for reasoning models), so both paths send the same body, and
 * `config` holds the URL and headers the SDK would use. Not in the SDK's types; checked at run
 * time, and a model without them is called through `doGenerate`.
 */
export interface ChatModelInternals {
  modelId: string;
  getArgs(
    options: LanguageModelV3CallOptions,
  ): Promise<{ args: Record<string, unknown>; warnings: SharedV3Warning[] }>;
  config: {
    url(options: { path: string; modelId: string }): string;
    headers(): Record<string, string | undefined>;
  };
}

function internalsOf(model: LanguageModelV3): ChatModelInternals | undefined {
  const candidate = model as unknown as Partial<ChatModelInternals>;
  if (
    typeof candidate.getArgs !== "function" ||
    typeof candidate.config?.url !== "function" ||
    typeof candidate.config?.headers !== "function"
  ) {
    return undefined;
  }
  return candidate as ChatModelInternals;
}

export interface LeanTarget extends PostTarget {
  url: string;
  headers: Record<string, string>;
}

/**
 * Where and with which headers a model's calls go: the SDK's URL and headers (key, extra
 * headers, its user-agent), plus what its `postJsonToApi` adds (content-type, the runtime in the
 * user-agent). Undefined when fetch would refuse the URL (credentials in it): the SDK path then.
 */
function leanTarget(model: ChatModelInternals): LeanTarget | undefined {
  const url = model.config.url({ path: "/chat/completions", modelId: model.modelId });
  const parsed = new URL(url);
  if (parsed.username || parsed.password) return undefined;
  // As fetch sends them (accept: */* included: some proxies and WAFs look for it).
  const headers: Record<string, string> = { accept: "*/*", "content-type": "application/json" };
  for (const [name, value] of Object.entries(model.config.headers())) {
    if (value !== undefined && value !== null) headers[name.toLowerCase()] = value;
  }
  headers["user-agent"] = [headers["user-agent"], `runtime/node.js/${process.version}`]
    .filter(Boolean)
    .join(" ");
  return { url, origin: parsed.origin, path: `${parsed.pathname}${parsed.search}`, headers };
}

/**
 * The lean target of each model (made once per model object), or null for a model the lean
 * client cannot call (another SDK version, credentials in the URL): the SDK's way then.
 */
export function leanTargets(): (model: LanguageModelV3) => LeanTarget | null {
  const targets = new WeakMap<LanguageModelV3, LeanTarget | null>();
  return (model) => {
    let target = targets.get(model);
    if (target === undefined) {
      const internals = internalsOf(model);
      target = (internals && leanTarget(internals)) ?? null;
      targets.set(model, target);
    }
    return target;
  };
}
