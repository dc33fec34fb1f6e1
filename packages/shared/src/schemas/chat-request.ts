import { z } from "zod";

/**
 * An OpenAI chat-completions request body (https://platform.openai.com/docs/api-reference/chat/create).
 * Unknown fields are rejected with a 400 naming them, as OpenAI does, rather than silently dropped.
 */
const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });
const imagePart = z.strictObject({
  type: z.literal("image_url"),
  image_url: z.strictObject({
    url: z.string().refine((url) => /^(https?:\/\/|data:image\/[a-z0-9.+-]+;base64,)/i.test(url), {
      message: "must be an http(s) URL or a data:image/...;base64, URL",
    }),
    detail: z.enum(["auto", "low", "high"]).optional(),
  }),
});
export type TextPart = z.infer<typeof textPart>;
export type ImagePart = z.infer<typeof imagePart>;

const textContent = z.union([z.string(), z.array(textPart).min(1)]);

const toolCall = z.strictObject({
  id: z.string().min(1),
  type: z.literal("function"),
  function: z.strictObject({ name: z.string().min(1), arguments: z.string() }),
});
export type ToolCall = z.infer<typeof toolCall>;

const systemMessage = z.strictObject({
  role: z.enum(["system", "developer"]),
  content: textContent,
  name: z.string().optional(),
});
const userMessage = z.strictObject({
  role: z.literal("user"),
  content: z.union([z.string(), z.array(z.discriminatedUnion("type", [textPart, imagePart])).min(1)]),
  name: z.string().optional(),
});
const assistantMessage = z
  .strictObject({
    role: z.literal("assistant"),
    content: z.union([textContent, z.null()]).optional(),
    tool_calls: z.array(toolCall).optional(),
    refusal: z.string().nullable().optional(),
    name: z.string().optional(),
  })
  .refine((message) => (message.content ?? null) !== null || (message.tool_calls?.length ?? 0) > 0, {
    message: "an assistant message needs content or tool_calls",
  });
const toolMessage = z.strictObject({
  role: z.literal("tool"),
  content: textContent,
  tool_call_id: z.string().min(1),
});

export const chatMessageSchema = z.discriminatedUnion("role", [
  systemMessage,
  userMessage,
  assistantMessage,
  toolMessage,
]);
export type ChatMessage = z.infer<typeof chatMessageSchema>;

const functionTool = z.strictObject({
  type: z.literal("function"),
  function: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "tool names use a-z, A-Z, 0-9, _ and -, at most 64"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});
export type FunctionTool = z.infer<typeof functionTool>;

const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.strictObject({
      name: z.string().min(1),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

/**
 * An optional field that may also be sent as `null`, meaning unset, as OpenAI takes it (clients
 * that serialize every option send `"temperature": null`): parsed as absent.
 */
export function optionalOrNull<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === null ? undefined : value), schema.optional());
}

/** The request's fields, without the cross-field check (the gateway extends them). */
export const chatRequestFields = z.strictObject({
  model: optionalOrNull(z.string().min(1)),
  messages: z.array(chatMessageSchema).min(1, "messages must hold at least one message"),
  max_tokens: optionalOrNull(z.number().int().positive()),
  max_completion_tokens: optionalOrNull(z.number().int().positive()),
  temperature: optionalOrNull(z.number().min(0).max(2)),
  top_p: optionalOrNull(z.number().min(0).max(1)),
  stop: optionalOrNull(z.union([z.string(), z.array(z.string()).max(4)])),
  seed: optionalOrNull(z.number().int()),
  presence_penalty: optionalOrNull(z.number().min(-2).max(2)),
  frequency_penalty: optionalOrNull(z.number().min(-2).max(2)),
  tools: optionalOrNull(z.array(functionTool).max(128)),
  tool_choice: optionalOrNull(
    z.union([
      z.enum(["none", "auto", "required"]),
      z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: z.string() }) }),
    ]),
  ),
  parallel_tool_calls: optionalOrNull(z.boolean()),
  response_format: optionalOrNull(responseFormat),
  stream: optionalOrNull(z.boolean()),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: optionalOrNull(z.literal(1, { error: "n must be 1: Cascade runs one completion per job" })),
  user: optionalOrNull(z.string()),
});

type ToolChoiceFields = Pick<z.infer<typeof chatRequestFields>, "tool_choice" | "tools">;

/** A `tool_choice` naming a function must name one of `tools` (OpenAI answers 400 otherwise). */
export function toolChoiceNamesATool(request: ToolChoiceFields): boolean {
  if (request.tool_choice === undefined || typeof request.tool_choice === "string") return true;
  const name = request.tool_choice.function.name;
  return request.tools?.some((tool) => tool.function.name === name) === true;
}

export const TOOL_CHOICE_ERROR = {
  message: "tool_choice names a function that is not in tools",
  path: ["tool_choice"],
};

export const chatRequestSchema = chatRequestFields.refine(toolChoiceNamesATool, TOOL_CHOICE_ERROR);
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** The output budget the request asks for: `max_completion_tokens` wins over the legacy `max_tokens`. */
export function requestedMaxTokens(request: ChatRequest): number | undefined {
  return request.max_completion_tokens ?? request.max_tokens;
}
