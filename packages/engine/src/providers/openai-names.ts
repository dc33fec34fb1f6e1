import type { ChatRequest } from "@cascade/shared";

/**
 * A message's `name` (OpenAI's participant name) for `openai`-type providers. The AI SDK's prompt
 * has no place for it, so it is put back into the request body the SDK built: by the lean client
 * before it sends the body, and, for streams, by the provider fetch (response-watch.ts), both
 * finding the call's names by its AbortSignal as the response watchers do. Only calls whose
 * messages carry a name have an entry; every `openai`-type call sets or clears its signal's.
 */
const namesBySignal = new WeakMap<AbortSignal, { roles: string[]; names: Array<string | undefined> }>();

/** The roles a body's message may have for a request's message of each role. */
const SENT_ROLES: Record<string, readonly string[]> = {
  system: ["system", "developer"],
  developer: ["system", "developer"],
  user: ["user"],
  assistant: ["assistant"],
  tool: ["tool"],
};

/** Notes the call's message names under its signal (or forgets any a previous call left). */
export function noteMessageNames(signal: AbortSignal | undefined, request: ChatRequest): void {
  if (!signal) return;
  let names: Array<string | undefined> | undefined;
  for (const [index, message] of request.messages.entries()) {
    const name = "name" in message ? message.name : undefined;
    if (name === undefined) continue;
    names ??= new Array(request.messages.length).fill(undefined);
    names[index] = name;
  }
  if (names) namesBySignal.set(signal, { roles: request.messages.map((message) => message.role), names });
  else namesBySignal.delete(signal);
}

/**
 * Puts the noted names into a chat-completions body's `messages`, when they line up one to one
 * with the request's (the SDK makes one message of each, unless a model drops system messages:
 * then nothing is named rather than the wrong message). True when the body changed.
 */
export function nameMessages(signal: AbortSignal | undefined, body: { messages?: unknown }): boolean {
  const noted = signal ? namesBySignal.get(signal) : undefined;
  const messages = body.messages;
  if (!noted || !Array.isArray(messages) || messages.length !== noted.names.length) return false;
  for (const [index, role] of noted.roles.entries()) {
    const sent = (messages[index] as { role?: unknown } | null | undefined)?.role;
    if (typeof sent !== "string" || !SENT_ROLES[role]?.includes(sent)) return false;
  }
  for (const [index, name] of noted.names.entries()) {
    if (name !== undefined) (messages[index] as { name?: string }).name = name;
  }
  return true;
}

/** The same for a body as JSON (the streamed call's, in the provider fetch). */
export function nameMessagesInJson(signal: AbortSignal | undefined, json: string): string {
  if (!signal || !namesBySignal.has(signal)) return json;
  const body = JSON.parse(json) as { messages?: unknown };
  return nameMessages(signal, body) ? JSON.stringify(body) : json;
}
