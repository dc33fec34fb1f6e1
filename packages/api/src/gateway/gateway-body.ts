import {
  type ChatRequest,
  chatRequestFields,
  NULL_MEANS_UNSET,
  nullsAsUnset,
  TOOL_CHOICE_ERROR,
  toolChoiceNamesATool,
} from "@cascade/shared";
import { z } from "zod";

/**
 * POST /v1/chat/completions: an OpenAI chat-completions body, plus the contract's extension
 * fields (`models`, `route`, `metadata`, `max_cost_usd`; `user` is OpenAI's own). Unknown fields
 * are a 400 naming them, as OpenAI answers.
 */
export const gatewayBodySchema = z.preprocess(
  nullsAsUnset([...NULL_MEANS_UNSET, "metadata"]),
  chatRequestFields
    .extend({
      models: z.array(z.string().min(1)).min(1, "models must name at least one model").max(16).optional(),
      route: z.string().min(1).optional(),
      // OpenAI's own `metadata` has the same shape (at most 16 string pairs).
      metadata: z
        .record(z.string().max(64), z.string().max(512))
        .refine((metadata) => Object.keys(metadata).length <= 16, "metadata holds at most 16 keys")
        .optional(),
      max_cost_usd: z.number().positive().optional(),
      // The end user budgets and usage are kept per (a Redis key part: bounded, as for jobs).
      user: z.string().max(256, "user holds at most 256 characters").optional(),
      // OpenAI fields clients send that a fallback chain cannot honour across providers: accepted,
      // so that drop-in clients work, and not sent upstream (as LiteLLM's drop_params does).
      store: z.boolean().nullable().optional(),
      service_tier: z.string().max(64).nullable().optional(),
      reasoning_effort: z.string().max(64).nullable().optional(),
      logprobs: z.boolean().nullable().optional(),
      top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
      logit_bias: z.record(z.string(), z.number()).nullable().optional(),
      prompt_cache_key: z.string().max(1024).nullable().optional(),
      safety_identifier: z.string().max(1024).nullable().optional(),
      verbosity: z.string().max(64).nullable().optional(),
      prediction: z.record(z.string(), z.unknown()).nullable().optional(),
      // Text is what every provider of a chain answers: audio output cannot be asked for.
      modalities: z
        .array(z.literal("text", { error: "modalities may only ask for text" }))
        .nullable()
        .optional(),
      audio: z
        .null({ error: "audio output is not supported: send audio as null or leave it out" })
        .optional(),
    })
    .refine(toolChoiceNamesATool, TOOL_CHOICE_ERROR),
);
export type GatewayBody = z.infer<typeof gatewayBodySchema>;

/** The body as the provider request: the extension fields are Cascade's, not the model's. */
export function providerRequest(body: GatewayBody): ChatRequest {
  const {
    models: _models,
    route: _route,
    metadata: _metadata,
    max_cost_usd: _max,
    store: _store,
    service_tier: _tier,
    reasoning_effort: _effort,
    logprobs: _logprobs,
    top_logprobs: _topLogprobs,
    logit_bias: _logitBias,
    prompt_cache_key: _cacheKey,
    safety_identifier: _safety,
    verbosity: _verbosity,
    prediction: _prediction,
    modalities: _modalities,
    audio: _audio,
    ...request
  } = body;
  return request;
}
