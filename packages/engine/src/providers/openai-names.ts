import type { ChatRequest } from "@cascade/shared";
import { isObjectArguments } from "./tool-arguments.js";

/**
 * Message fields the AI SDK's prompt has no place for, for `openai`-type providers: a message's
 * `name` (OpenAI's participant name), and a tool call's `arguments` that are not a JSON object
 * (the SDK's prompt takes an object, and its OpenAI converter sends `"{}"` for anything else: the
 * caller's history would reach the provider changed). They are put back into the request body the
 * SDK built: by the lean client before it sends the body, and, for streams, by the provider fetch
 * (response-watch.ts), both finding the call's fields by its AbortSignal as the response watchers
 * do. Only calls whose messages carry such a field have an entry; every `openai`-type call sets or
 * clears its signal's.
 */
interface UnsentFields {
  roles: string[];
  names: Array<string | undefined>;
  /** Per message, its tool calls' arguments as sent by the caller, where not an object. */
  toolArguments: Array<Array<{ id: string; text: string } | undefined> | undefined>;
}
const fieldsBySignal = new WeakMap<AbortSignal, UnsentFields>();

/** The roles a body's message may have for a request's message of each role. */
const SENT_ROLES: Record<string, readonly string[]> = {
  system: ["system", "developer"],
  developer: ["system", "developer"],
  user: ["user"],
  assistant: ["assistant"],
  tool: ["tool"],
};

/**
 * Notes the call's unsent message fields under its signal (or forgets any a previous call left).
 * `toolCallId` gives the id a tool call has in the body (Mistral's are rewritten).
 */
export function noteUnsentFields(
  signal: AbortSignal | undefined,
  request: ChatRequest,
  toolCallId: (id: string) => string = (id) => id,
): void {
  if (!signal) return;
  let noted: UnsentFields | undefined;
  const note = () => {
    const length = request.messages.length;
    noted ??= {
      roles: request.messages.map((message) => message.role),
      names: new Array(length).fill(undefined),
      toolArguments: new Array(length).fill(undefined),
    };
    return noted;
  };
  for (const [index, message] of request.messages.entries()) {
    if ("name" in message && message.name !== undefined) note().names[index] = message.name;
    if (message.role !== "assistant" || !message.tool_calls) continue;
    for (const [position, call] of message.tool_calls.entries()) {
      if (isObjectArguments(call.function.arguments)) continue;
      const fields = note();
      const calls = fields.toolArguments[index] ?? new Array(message.tool_calls.length).fill(undefined);
      fields.toolArguments[index] = calls;
      calls[position] = { id: toolCallId(call.id), text: call.function.arguments };
    }
  }
  if (noted) fieldsBySignal.set(signal, noted);
  else fieldsBySignal.delete(signal);
}

/**
 * Puts the noted fields into a chat-completions body's `messages`, when they line up one to one
 * with the request's (the SDK makes one message of each, unless a model drops system messages:
 * then nothing is restored rather than into the wrong message), and a tool call's arguments only
 * into the call of the same id. True when the body changed.
 */
export function restoreUnsentFields(signal: AbortSignal | undefined, body: { messages?: unknown }): boolean {
  const noted = signal ? fieldsBySignal.get(signal) : undefined;
  const messages = body.messages;
  if (!noted || !Array.isArray(messages) || messages.length !== noted.names.length) return false;
  for (const [index, role] of noted.roles.entries()) {
    const sent = (messages[index] as { role?: unknown } | null | undefined)?.role;
    if (typeof sent !== "string" || !SENT_ROLES[role]?.includes(sent)) return false;
  }
  for (const [index, name] of noted.names.entries()) {
    if (name !== undefined) (messages[index] as { name?: string }).name = name;
  }
  for (const [index, calls] of noted.toolArguments.entries()) {
    if (!calls) continue;
    const sentCalls = (messages[index] as { tool_calls?: unknown }).tool_calls;
    if (!Array.isArray(sentCalls)) continue;
    for (const [position, call] of calls.entries()) {
      const sent = sentCalls[position] as { id?: unknown; function?: { arguments?: unknown } } | undefined;
      if (call && sent?.id === call.id && sent.function) sent.function.arguments = call.text;
    }
  }
  return true;
}

/** The same for a body as JSON (the streamed call's, in the provider fetch). */
export function restoreUnsentFieldsInJson(signal: AbortSignal | undefined, json: string): string {
  if (!signal || !fieldsBySignal.has(signal)) return json;
  const body = JSON.parse(json) as { messages?: unknown };
  return restoreUnsentFields(signal, body) ? JSON.stringify(body) : json;
}
