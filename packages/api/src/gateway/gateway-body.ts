import {
  type ChatRequest,
  chatRequestFields,
  IGNORED_OPENAI_FIELDS,
  NULL_MEANS_UNSET,
  nullsAsUnset,
  openAIMetadataSchema,
  TOOL_CHOICE_ERROR,
  TOOL_CHOICE_REQUIRED_ERROR,
  TOP_LOGPROBS_ERROR,
  toolChoiceNamesATool,
  toolChoiceRequiredHasTools,
  topLogprobsNeedLogprobs,
  withoutIgnoredFields,
} from "@cascade/shared";
import { z } from "zod";

/**
 * POST /v1/chat/completions: an OpenAI chat-completions body, plus the contract's extension
 * fields (`models`, `route`, `metadata`, `max_cost_usd`; `user` is OpenAI's own). Unknown fields
 * are a 400 naming them, as OpenAI answers.
 */
export const gatewayBodySchema = z.preprocess(
  nullsAsUnset([...NULL_MEANS_UNSET, "metadata", "models", "route", "max_cost_usd"]),
  chatRequestFields
    .extend({
      models: z.array(z.string().min(1)).min(1, "models must name at least one model").max(16).optional(),
      route: z.string().min(1).optional(),
      // OpenAI's own `metadata` has the same shape (at most 16 string pairs).
      metadata: openAIMetadataSchema.optional(),
      max_cost_usd: z.number().min(0).optional(),
      // `user` is OpenAI's own field (chatRequestFields), of any length as OpenAI takes it:
      // endUserOf reads the end user for budgets and usage from it (past 256 characters, nobody).
      ...IGNORED_OPENAI_FIELDS,
    })
    .refine(toolChoiceNamesATool, TOOL_CHOICE_ERROR)
    .refine(toolChoiceRequiredHasTools, TOOL_CHOICE_REQUIRED_ERROR)
    .refine(topLogprobsNeedLogprobs, TOP_LOGPROBS_ERROR)
    // As OpenAI answers it: the options of a stream that is not asked for are a mistake.
    .refine((body) => body.stream_options == null || body.stream === true, {
      message: "stream_options is only allowed when stream is true",
      path: ["stream_options"],
    }),
);
export type GatewayBody = z.infer<typeof gatewayBodySchema>;

/** The body as the provider request: the extension fields are Cascade's, not the model's. */
export function providerRequest(body: GatewayBody): ChatRequest {
  const { models: _models, route: _route, metadata: _metadata, max_cost_usd: _max, ...request } = body;
  return withoutIgnoredFields(request);
}
