import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3GenerateResult,
} from "@ai-sdk/provider";
import type { ProviderError } from "../provider-error.js";

/** One AI SDK model object per upstream model name, made on first use. */
export function modelCache(create: (name: string) => LanguageModelV3): (name: string) => LanguageModelV3 {
  const models = new Map<string, LanguageModelV3>();
  return (name) => {
    let model = models.get(name);
    if (!model) {
      model = create(name);
      models.set(name, model);
    }
    return model;
  };
}

/**
 * One `doGenerate` call; a failure is classified by the provider's own classifier, except an
 * abort, which rethrows the signal's reason (the chain runner tells timeout from cancellation).
 */
export async function generateOrClassify(
  model: LanguageModelV3,
  options: LanguageModelV3CallOptions,
  signal: AbortSignal,
  classify: (error: unknown) => ProviderError,
): Promise<LanguageModelV3GenerateResult> {
  try {
    return await model.doGenerate(options);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw classify(error);
  }
}
