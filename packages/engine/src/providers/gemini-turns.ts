import type { LanguageModelV3Prompt } from "@ai-sdk/provider";

/**
 * Gemini wants a conversation's turns to alternate between `user` and `model` (older models answer
 * two turns of one role in a row with a 400, "Please ensure that multiturn requests alternate
 * between user and model."; newer ones may read them as two requests). A function response is a
 * user turn there, and @ai-sdk/google makes each OpenAI message its own turn: the `tool` messages
 * of a turn and the user's text after them would go as two user turns. The prompt cannot join
 * them (a tool message holds tool results only), so the request body does: adjacent turns of one
 * role become one, their parts in order (the function responses, then the text).
 * https://ai.google.dev/gemini-api/docs/function-calling#multi-turn
 */

/** One entry of a generateContent request's `contents` (no role means "user", as at Google). */
interface GeminiContent {
  role?: string;
  parts?: unknown[];
}

const roleOf = (content: GeminiContent) => content.role ?? "user";

/**
 * The contents with adjacent turns of one role joined; undefined when they already alternate (or
 * are not a list of turns), so the caller sends the body it has.
 */
export function alternatingTurns(contents: unknown): GeminiContent[] | undefined {
  if (!Array.isArray(contents)) return undefined;
  const turns = contents as GeminiContent[];
  if (!turns.some((turn, position) => position > 0 && roleOf(turn) === roleOf(turns[position - 1] ?? {})))
    return undefined;
  const joined: GeminiContent[] = [];
  for (const turn of turns) {
    const previous = joined.at(-1);
    if (previous && roleOf(previous) === roleOf(turn))
      joined[joined.length - 1] = { ...previous, parts: [...(previous.parts ?? []), ...(turn.parts ?? [])] };
    else joined.push(turn);
  }
  return joined;
}

/**
 * The calls (by the AbortSignal the SDK passes through to fetch, as response-watch.ts does) whose
 * prompt holds tool results followed by a user turn: only their bodies are parsed and joined.
 */
const joinedCalls = new WeakSet<AbortSignal>();

/**
 * Marks the call when its prompt (as shaped for Gemini) has a tool message right before a user
 * one: the two turns Gemini would get in a row, which only the request body can join.
 */
export function markTurnsToJoin(prompt: LanguageModelV3Prompt, signal: AbortSignal): void {
  for (let index = 1; index < prompt.length; index++) {
    if (prompt[index]?.role === "user" && prompt[index - 1]?.role === "tool") {
      joinedCalls.add(signal);
      return;
    }
  }
}

/**
 * `fetch`, with a request body's adjacent same-role turns joined (alternatingTurns), for the calls
 * markTurnsToJoin marked: the prompt already joins user turns, model turns and the results of one
 * turn's calls, so any other body goes as it is, unparsed (an agent's history of tool results,
 * images inlined, may be megabytes).
 */
export function withAlternatingTurns(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    const body = init?.body;
    const signal = init?.signal;
    if (typeof body !== "string" || !signal || !joinedCalls.has(signal)) return fetch(input, init);
    let parsed: { contents?: unknown };
    try {
      parsed = JSON.parse(body);
    } catch {
      return fetch(input, init);
    }
    const contents = alternatingTurns(parsed?.contents);
    if (!contents) return fetch(input, init);
    return fetch(input, { ...init, body: JSON.stringify({ ...parsed, contents }) });
  };
}
