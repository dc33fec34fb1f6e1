import { z } from "zod";
import { fieldPath } from "./field-path.js";

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

/**
 * A message's `content` that is neither form: what it should be ("Invalid input" said nothing),
 * or, for an array, what is wrong inside it (its first problem, e.g. `[0].text: ...`).
 */
function contentError(parts: string) {
  return (issue: {
    code?: string;
    input?: unknown;
    errors?: Array<Array<{ path: PropertyKey[]; message: string }>>;
  }) => {
    if (issue.code !== "invalid_union") return undefined;
    const inner = Array.isArray(issue.input) ? issue.errors?.[1]?.[0] : undefined;
    if (inner) return `${inner.path.length ? `${fieldPath(inner.path)}: ` : ""}${inner.message}`;
    return `content must be a string or an array of ${parts}`;
  };
}

const textContent = z.union([z.string(), z.array(textPart).min(1)], {
  error: contentError('text parts ({type: "text", text})'),
});

/**
 * `keys` left out of `value` (a copy only when one is there): fields a client may send back from
 * an answer that are not part of the request sent upstream.
 */
function without<T extends object, K extends PropertyKey>(value: T, keys: readonly K[]): Omit<T, K> {
  let copy: Record<PropertyKey, unknown> | undefined;
  for (const key of keys) {
    if (!(key in value)) continue;
    copy ??= { ...(value as Record<PropertyKey, unknown>) };
    delete copy[key];
  }
  return (copy ?? value) as Omit<T, K>;
}

const toolCall = z.strictObject({
  id: z.string().min(1),
  type: z.literal("function"),
  function: z
    .strictObject({
      name: z.string().min(1),
      arguments: z.string(),
      // The openai SDK's stream helpers parse a tool call's arguments into its message: code that
      // sends that message back on the next turn sends these too (dropped: `arguments` holds them).
      parsed_arguments: z.unknown().optional(),
    })
    .transform((call) => without(call, ["parsed_arguments"])),
});
export type ToolCall = z.infer<typeof toolCall>;

const systemMessage = z.strictObject({
  role: z.enum(["system", "developer"]),
  content: textContent,
  name: z.string().optional(),
});
const userMessage = z.strictObject({
  role: z.literal("user"),
  content: z.union([z.string(), z.array(z.discriminatedUnion("type", [textPart, imagePart])).min(1)], {
    error: contentError("content parts (text or image_url)"),
  }),
  name: z.string().optional(),
});
/**
 * An assistant message's fields that come from an answer, not a request: a message sent back as
 * OpenAI returned it (`annotations`, `audio: null`, `function_call: null`) or as the openai SDK's
 * stream helpers build it (`parsed`). OpenAI takes them back; they are dropped, not sent upstream.
 */
const ANSWER_ONLY_FIELDS = ["parsed", "annotations", "audio", "function_call"] as const;
/**
 * An assistant message's content parts: OpenAI's `text` and `refusal`. A refusal part is what the
 * assistant said, sent upstream as a text part (every provider takes text; not every
 * OpenAI-compatible one takes refusal parts).
 */
const refusalPart = z.strictObject({ type: z.literal("refusal"), refusal: z.string() });
const assistantPart = z
  .discriminatedUnion("type", [textPart, refusalPart])
  .transform((part): TextPart => (part.type === "refusal" ? { type: "text", text: part.refusal } : part));
const assistantMessage = z
  .strictObject({
    role: z.literal("assistant"),
    content: z
      .union([z.string(), z.array(assistantPart).min(1), z.null()], {
        error: contentError("content parts (text or refusal), or null with tool_calls"),
      })
      .optional(),
    tool_calls: z.array(toolCall).optional(),
    refusal: z.string().nullable().optional(),
    name: z.string().optional(),
    parsed: z.unknown().optional(),
    annotations: z.array(z.unknown()).nullable().optional(),
    audio: z
      .null({ error: "an earlier audio answer cannot be referred to: send audio as null or leave it out" })
      .optional(),
    function_call: z
      .null({ error: "legacy function calls are not supported: send the call in tool_calls" })
      .optional(),
  })
  .refine((message) => (message.content ?? null) !== null || (message.tool_calls?.length ?? 0) > 0, {
    message: "an assistant message needs content or tool_calls",
  })
  .transform((message) => without(message, ANSWER_ONLY_FIELDS));
const toolMessage = z.strictObject({
  role: z.literal("tool"),
  content: textContent,
  tool_call_id: z.string().min(1),
});

/**
 * A message's optional fields a client may send as `null` for unset, as OpenAI takes them: a
 * history written by Python's `model_dump()` holds `name: None` and `tool_calls: None`.
 */
const messageNullsUnset = nullsAsUnset(["name", "tool_calls"]);
export const chatMessageSchema = z.preprocess(
  messageNullsUnset,
  z.discriminatedUnion("role", [systemMessage, userMessage, assistantMessage, toolMessage]),
);
export type ChatMessage = z.infer<typeof chatMessageSchema>;

const functionTool = z.strictObject({
  type: z.literal("function"),
  function: z.preprocess(
    nullsAsUnset(["description", "parameters"]),
    z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "tool names use a-z, A-Z, 0-9, _ and -, at most 64"),
      description: z.string().optional(),
      parameters: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  ),
});
export type FunctionTool = z.infer<typeof functionTool>;

const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.preprocess(
      nullsAsUnset(["description", "schema"]),
      z.strictObject({
        name: z.string().min(1),
        description: z.string().optional(),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
      }),
    ),
  }),
]);

/**
 * OpenAI's own request fields that other providers have no counterpart for: kept in the request
 * and sent to a provider that takes them (`openai_fields: forward`, the default for OpenAI's and
 * Azure OpenAI's hosts), left out for any other. Values as the openai SDK's own types allow.
 */
const OPENAI_OWN_FIELDS = [
  "store",
  "service_tier",
  "reasoning_effort",
  "logit_bias",
  "prompt_cache_key",
  "safety_identifier",
  "verbosity",
  "logprobs",
  "top_logprobs",
  "prediction",
] as const;
const openAIOwnFields = {
  store: z.boolean().optional(),
  service_tier: z.enum(["auto", "default", "flex", "scale", "priority"]).optional(),
  reasoning_effort: z.enum(["none", "minimal", "low", "medium", "high", "xhigh", "max"]).optional(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, "logit_bias keys are token ids"), z.number().min(-100).max(100))
    .optional(),
  prompt_cache_key: z.string().max(1024).optional(),
  safety_identifier: z.string().max(1024).optional(),
  verbosity: z.enum(["low", "medium", "high"]).optional(),
  // Log probabilities come back in the answer's choices: given by a provider that takes OpenAI's
  // fields, null from any other hop (ADR 0017). `top_logprobs` needs `logprobs: true` (checked at
  // the doors: topLogprobsNeedLogprobs).
  logprobs: z.boolean().optional(),
  top_logprobs: z.number().int().min(0).max(20).optional(),
  prediction: z
    .strictObject({
      type: z.literal("content"),
      content: z.union([z.string(), z.array(textPart)]),
    })
    .optional(),
};

/**
 * Optional fields a client may also send as `null`, meaning unset, as OpenAI takes them (clients
 * that serialize every option send `"temperature": null`): dropped before the object is parsed.
 */
export const NULL_MEANS_UNSET = [
  "model",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "stop",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "response_format",
  "stream",
  "n",
  "user",
  ...OPENAI_OWN_FIELDS,
] as const;

/**
 * A preprocess that drops `keys` holding null from an object (a copy; the body as sent stays as
 * it was). One pass over the object's own keys per parse (a body has a few; `keys` up to 30): a
 * per-field preprocess doubled the parse's cost, and the worker parses every job's data at its claim.
 */
export function nullsAsUnset(keys: readonly string[]): (value: unknown) => unknown {
  const unsettable = new Set(keys);
  return (value) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
    const fields = value as Record<string, unknown>;
    let copy: Record<string, unknown> | undefined;
    for (const key in fields) {
      if (fields[key] !== null || !unsettable.has(key) || !Object.hasOwn(fields, key)) continue;
      copy ??= { ...fields };
      delete copy[key];
    }
    return copy ?? value;
  };
}

/** The request's fields, without the cross-field check (the gateway extends them). */
export const chatRequestFields = z.strictObject({
  model: z.string().min(1).optional(),
  messages: z.array(chatMessageSchema).min(1, "messages must hold at least one message"),
  max_tokens: z.number().int().positive().optional(),
  max_completion_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  stop: z
    .union([z.string(), z.array(z.string()).max(4)], {
      error: (issue) =>
        issue.code === "invalid_union" ? "stop must be a string or an array of at most 4 strings" : undefined,
    })
    .optional(),
  seed: z.number().int().optional(),
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  tools: z.array(functionTool).max(128).optional(),
  tool_choice: z
    .union([
      z.enum(["none", "auto", "required"]),
      z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: z.string() }) }),
    ])
    .optional(),
  parallel_tool_calls: z.boolean().optional(),
  response_format: responseFormat.optional(),
  stream: z.boolean().optional(),
  stream_options: z
    .strictObject({
      include_usage: z.boolean().optional(),
      // OpenAI pads streamed chunks against a length side channel; Cascade's chunks carry no
      // padding, asked for or not.
      include_obfuscation: z.boolean().optional(),
    })
    .nullable()
    .optional(),
  n: z.literal(1, { error: "n must be 1: Cascade runs one completion per job" }).optional(),
  user: z.string().optional(),
  ...openAIOwnFields,
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

/** `tool_choice: "required"` needs a tool to call (OpenAI answers a 400 naming tool_choice otherwise). */
export function toolChoiceRequiredHasTools(request: ToolChoiceFields): boolean {
  return request.tool_choice !== "required" || (request.tools?.length ?? 0) > 0;
}

export const TOOL_CHOICE_REQUIRED_ERROR = {
  message: 'tool_choice "required" is only allowed when tools are given',
  path: ["tool_choice"],
};

type LogprobsFields = Pick<z.infer<typeof chatRequestFields>, "logprobs" | "top_logprobs">;

/**
 * `top_logprobs` only with `logprobs: true`, as OpenAI answers it (a 400 naming `top_logprobs`):
 * alone it asks for nothing, and a caller who sent it is waiting for log probabilities that would
 * never come. Checked where requests come in (the gateway's body, a job's `request`, a batch
 * line's body), not in `chatRequestSchema`, which also checks queued job data: a job queued
 * before the check existed still runs (its `top_logprobs` is not sent, as before).
 */
export function topLogprobsNeedLogprobs(request: LogprobsFields): boolean {
  return request.top_logprobs === undefined || request.logprobs === true;
}

export const TOP_LOGPROBS_ERROR = {
  message: "top_logprobs is only allowed when logprobs is true",
  path: ["top_logprobs"],
};

export const chatRequestSchema = z.preprocess(
  nullsAsUnset(NULL_MEANS_UNSET),
  chatRequestFields
    .refine(toolChoiceNamesATool, TOOL_CHOICE_ERROR)
    .refine(toolChoiceRequiredHasTools, TOOL_CHOICE_REQUIRED_ERROR),
);
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/**
 * OpenAI chat fields a fallback chain cannot honour across providers (ADR 0017): accepted, so that
 * drop-in clients and existing OpenAI batch files work, and not sent upstream (as LiteLLM's
 * drop_params does). The same at every door: the gateway, a job's `request`, a batch line's body.
 */
export const IGNORED_OPENAI_FIELDS = {
  // Text is what every provider of a chain answers: audio output cannot be asked for.
  modalities: z
    .array(z.literal("text", { error: "modalities may only ask for text" }))
    .nullable()
    .optional(),
  audio: z.null({ error: "audio output is not supported: send audio as null or leave it out" }).optional(),
};
const IGNORED_OPENAI_KEYS = Object.keys(IGNORED_OPENAI_FIELDS);

/** `body` without the fields Cascade accepts and does not send (a copy only when one is there). */
export function withoutIgnoredFields<T extends object>(body: T): Omit<T, keyof typeof IGNORED_OPENAI_FIELDS> {
  let copy: Record<string, unknown> | undefined;
  for (const key of IGNORED_OPENAI_KEYS) {
    if (!(key in body)) continue;
    copy ??= { ...(body as Record<string, unknown>) };
    delete copy[key];
  }
  return (copy ?? body) as Omit<T, keyof typeof IGNORED_OPENAI_FIELDS>;
}

/**
 * `metadata` as OpenAI takes it (on a chat body, a batch) and as a job or gateway request carries
 * it: at most 16 string pairs, keys of at most 64 characters, values of at most 512.
 */
export const openAIMetadataSchema = z
  .record(z.string().max(64), z.string().max(512), {
    // Zod's own words for a long key were "Invalid key in record".
    error: (issue) => (issue.code === "invalid_key" ? "metadata keys hold at most 64 characters" : undefined),
  })
  .refine((metadata) => Object.keys(metadata).length <= 16, "metadata holds at most 16 keys");

/** What a job's request or a batch line may carry and Cascade drops: the fields above, and OpenAI's `metadata`. */
const droppedFieldsSchema = z.object({
  ...IGNORED_OPENAI_FIELDS,
  metadata: openAIMetadataSchema.nullable().optional(),
});
const DROPPED_KEYS = new Set([...IGNORED_OPENAI_KEYS, "metadata"]);
const nullsDropped = nullsAsUnset(NULL_MEANS_UNSET);

/**
 * A preprocess: the body without the fields Cascade drops, those checked first (an `audio` that
 * asks for output is still a 400 naming it). A body without any (nearly all) is passed as it is,
 * after one look at its keys: this runs for every POST /v1/jobs.
 */
function droppingIgnored(value: unknown, context: z.RefinementCtx): unknown {
  const body = nullsDropped(value);
  if (typeof body !== "object" || body === null || Array.isArray(body)) return body;
  let found = false;
  for (const key in body) {
    if (DROPPED_KEYS.has(key)) {
      found = true;
      break;
    }
  }
  if (!found) return body;
  const kept: Record<string, unknown> = {};
  const dropped: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(body)) {
    if (DROPPED_KEYS.has(key)) dropped[key] = field;
    else kept[key] = field;
  }
  const checked = droppedFieldsSchema.safeParse(dropped);
  if (!checked.success) {
    for (const issue of checked.error.issues) {
      context.addIssue({ code: "custom", message: issue.message, path: issue.path, input: dropped });
    }
  }
  return kept;
}

/**
 * An OpenAI chat-completions body as a client sends it (a job's `request`, a batch line's body):
 * the request Cascade runs, with OpenAI's fields it ignores (and OpenAI's `metadata`) accepted and
 * dropped. Unknown fields are still a 400 naming them.
 */
export const openAIChatBodySchema = z.preprocess(
  droppingIgnored,
  chatRequestFields
    .refine(toolChoiceNamesATool, TOOL_CHOICE_ERROR)
    .refine(toolChoiceRequiredHasTools, TOOL_CHOICE_REQUIRED_ERROR)
    .refine(topLogprobsNeedLogprobs, TOP_LOGPROBS_ERROR),
);

/** The output budget the request asks for: `max_completion_tokens` wins over the legacy `max_tokens`. */
export function requestedMaxTokens(request: ChatRequest): number | undefined {
  return request.max_completion_tokens ?? request.max_tokens;
}
