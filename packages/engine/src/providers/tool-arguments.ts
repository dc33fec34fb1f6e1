import type { ChatRequest } from "@cascade/shared";

/**
 * Whether a tool call's `arguments` text can be an Anthropic `tool_use.input` or a Gemini
 * `functionCall.args`, which must be objects: blank (a call without parameters) or a JSON object.
 * OpenAI takes any string there (a call cut off by `max_tokens` comes back with half an object,
 * and agent loops send the history back as it was).
 */
export function isObjectArguments(text: string): boolean {
  if (text.trim() === "") return true;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** Whether a request's history holds a tool call whose arguments are not an object (see isObjectArguments). */
export function hasRawToolArguments(request: ChatRequest): boolean {
  return request.messages.some(
    (message) =>
      message.role === "assistant" &&
      message.tool_calls?.some((call) => !isObjectArguments(call.function.arguments)) === true,
  );
}
