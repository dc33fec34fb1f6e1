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
 * `fetch`, with a request body's adjacent same-role turns joined (alternatingTurns). Only a body
 * with a function response can hold such turns (the prompt already joins user turns, model turns
 * and the results of one turn's calls), so only such a body is parsed.
 */
export function withAlternatingTurns(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    const body = init?.body;
    if (typeof body !== "string" || !body.includes('"functionResponse"')) return fetch(input, init);
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
