import type {
  LanguageModelV3CallOptions,
  LanguageModelV3FilePart,
  LanguageModelV3Message,
  LanguageModelV3TextPart,
  LanguageModelV3ToolChoice,
} from "@ai-sdk/provider";
import { type ChatMessage, type ChatRequest, requestedMaxTokens } from "@cascade/shared";

type TextContent = string | Array<{ type: "text"; text: string }>;

function joinText(content: TextContent | null | undefined): string {
  if (content === null || content === undefined) return "";
  return typeof content === "string" ? content : content.map((part) => part.text).join("\n");
}

/**
 * An `image_url` as the AI SDK file part: URLs pass through (never downloaded), data URLs decoded.
 * OpenAI's `detail` rides in the part's OpenAI options, which @ai-sdk/openai's chat model sends
 * as `image_url.detail` (it decides what the image is billed); other providers have no such knob.
 */
function imagePart(image: { url: string; detail?: "auto" | "low" | "high" }): LanguageModelV3FilePart {
  const options =
    image.detail === undefined ? {} : { providerOptions: { openai: { imageDetail: image.detail } } };
  const dataUrl = /^data:([^;,]+);base64,(.*)$/s.exec(image.url);
  if (dataUrl)
    return { type: "file", mediaType: dataUrl[1] ?? "image/png", data: dataUrl[2] ?? "", ...options };
  return { type: "file", mediaType: "image/*", data: new URL(image.url), ...options };
}

/**
 * A tool call's `arguments` as the SDK's `input`. Blank arguments (some clients and servers send
 * `""` for a call without parameters) are an empty object: Anthropic's `tool_use.input` and
 * Gemini's `functionCall.args` must be objects, and OpenAI's own answers say `"{}"`. Arguments
 * that are not an object reach only `openai`-type providers (the hop runner skips the others as
 * `capability_missing`), which get the caller's text back in the body (openai-names.ts).
 */
function parseArguments(text: string): unknown {
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Translates one OpenAI chat message; tool messages need the tool names their calls used. */
function toMessage(message: ChatMessage, toolNames: Map<string, string>): LanguageModelV3Message {
  switch (message.role) {
    case "system":
    case "developer":
      return { role: "system", content: joinText(message.content) };
    case "user": {
      const content: Array<LanguageModelV3TextPart | LanguageModelV3FilePart> =
        typeof message.content === "string"
          ? [{ type: "text", text: message.content }]
          : message.content.map((part) =>
              part.type === "text" ? { type: "text" as const, text: part.text } : imagePart(part.image_url),
            );
      return { role: "user", content };
    }
    case "assistant": {
      const text = joinText(message.content);
      return {
        role: "assistant",
        content: [
          ...(text ? [{ type: "text" as const, text }] : []),
          ...(message.tool_calls ?? []).map((call) => {
            toolNames.set(call.id, call.function.name);
            return {
              type: "tool-call" as const,
              toolCallId: call.id,
              toolName: call.function.name,
              input: parseArguments(call.function.arguments),
            };
          }),
        ],
      };
    }
    case "tool":
      return {
        role: "tool",
        content: [
          {
            type: "tool-result",
            toolCallId: message.tool_call_id,
            toolName: toolNames.get(message.tool_call_id) ?? "unknown",
            output: { type: "text", value: joinText(message.content) },
          },
        ],
      };
  }
}

function toToolChoice(choice: ChatRequest["tool_choice"]): LanguageModelV3ToolChoice | undefined {
  if (choice === undefined) return undefined;
  if (typeof choice === "string") return { type: choice };
  return { type: "tool", toolName: choice.function.name };
}

/** An OpenAI chat-completions body as AI SDK `LanguageModelV3CallOptions`. */
export function toCallOptions(request: ChatRequest, signal: AbortSignal): LanguageModelV3CallOptions {
  const toolNames = new Map<string, string>();
  const format = request.response_format;
  return {
    prompt: request.messages.map((message) => toMessage(message, toolNames)),
    maxOutputTokens: requestedMaxTokens(request),
    temperature: request.temperature,
    topP: request.top_p,
    stopSequences:
      request.stop === undefined
        ? undefined
        : typeof request.stop === "string"
          ? [request.stop]
          : request.stop,
    seed: request.seed,
    presencePenalty: request.presence_penalty,
    frequencyPenalty: request.frequency_penalty,
    responseFormat:
      format === undefined || format.type === "text"
        ? undefined
        : format.type === "json_object"
          ? { type: "json" }
          : {
              type: "json",
              schema: format.json_schema.schema as never,
              name: format.json_schema.name,
              description: format.json_schema.description,
            },
    tools: request.tools?.map((tool) => ({
      type: "function" as const,
      name: tool.function.name,
      description: tool.function.description,
      inputSchema: (tool.function.parameters ?? { type: "object", properties: {} }) as never,
      ...(tool.function.strict ? { strict: true } : {}),
    })),
    toolChoice: toToolChoice(request.tool_choice),
    abortSignal: signal,
  };
}
