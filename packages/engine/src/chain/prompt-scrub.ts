import type { ChatRequest } from "@cascade/shared";

const REDACTED = "[redacted]";
/** Shorter texts are left: they would take ordinary words ("Hi", "hello") with them. */
const MIN_TEXT_LENGTH = 6;
/**
 * A quote of a longer text is found by its first or last WINDOW characters, or by any WINDOW of
 * it looked up at every STEP-th position of the error text (so a quote from its middle of WINDOW +
 * STEP - 1 characters or more is found), then followed as far as it matches.
 */
const WINDOW = 16;
const STEP = 8;
/** One escape of JSON's or Python's, read where it starts (sticky). */
const ESCAPE = /\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[nrt"'\\/])/y;
/** A character of a word, which a short text's quote must not touch on either side. */
const WORD = /^[\p{L}\p{N}_]$/u;

/** The request's own words: message texts, the tool call arguments of its history, its tools. */
function* promptTexts(request: ChatRequest): Generator<string> {
  for (const message of request.messages) {
    const content: unknown = message.content;
    if (typeof content === "string") yield content;
    else if (Array.isArray(content)) {
      for (const part of content as Array<{ type?: string; text?: unknown }>) {
        if (part.type === "text" && typeof part.text === "string") yield part.text;
      }
    }
    if (message.role === "assistant")
      for (const call of message.tool_calls ?? []) yield call.function.arguments;
  }
  for (const tool of request.tools ?? []) {
    yield tool.function.name;
    if (tool.function.description) yield tool.function.description;
  }
}

/**
 * `text` with the common escapes an upstream writes a quoted text with undone: JSON's and
 * Python's (`\n`, `\"`, `\'`, `\\`, `\uXXXX`, `\xXX`), so a quote reads as the text was sent;
 * with, for each character, where it came from in `text` (`from[i]` its first character, `to[i]`
 * the one after its escape), so that spans found in it cut the original.
 */
function unescaped(text: string): { read: string; from: number[]; to: number[] } | undefined {
  if (!text.includes("\\")) return undefined;
  let read = "";
  const from: number[] = [];
  const to: number[] = [];
  for (let index = 0; index < text.length; ) {
    ESCAPE.lastIndex = index;
    const match = text[index] === "\\" ? ESCAPE.exec(text) : null;
    if (!match) {
      read += text[index];
      from.push(index);
      to.push(index + 1);
      index += 1;
      continue;
    }
    const code = match[1] as string;
    read +=
      code[0] === "u" || code[0] === "x"
        ? String.fromCharCode(Number.parseInt(code.slice(1), 16))
        : code === "n"
          ? "\n"
          : code === "r"
            ? "\r"
            : code === "t"
              ? "\t"
              : code;
    from.push(index);
    to.push(index + match[0].length);
    index += match[0].length;
  }
  return { read, from, to };
}

/**
 * Where `detail` and `text` go on matching around a WINDOW they share (`detail` from `position`,
 * `text` from `at`): the span of `detail` ([start, end)) that quotes `text`.
 */
function matchAround(detail: string, text: string, position: number, at: number): [number, number] {
  let start = position;
  let from = at;
  while (start > 0 && from > 0 && detail[start - 1] === text[from - 1]) {
    start -= 1;
    from -= 1;
  }
  let end = position + WINDOW;
  let to = at + WINDOW;
  while (end < detail.length && to < text.length && detail[end] === text[to]) {
    end += 1;
    to += 1;
  }
  return [start, end];
}

/** Spans of `detail` ([start, end), unsorted, may overlap) that quote a stretch of one of `texts`. */
function quotedSpans(detail: string, texts: readonly string[]): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  const long: string[] = [];
  for (const text of texts) {
    if (text.length >= WINDOW) {
      long.push(text);
      // Its start and its end, wherever they are: a quote cut short, or cut in the middle ("start...end").
      for (const at of [0, text.length - WINDOW]) {
        const anchor = text.slice(at, at + WINDOW);
        for (
          let position = detail.indexOf(anchor);
          position >= 0;
          position = detail.indexOf(anchor, position + 1)
        )
          spans.push(matchAround(detail, text, position, at));
      }
      continue;
    }
    // A short text (a tool's name, a one-line prompt) only as a word of its own: `search` is no
    // quote in `messages[1].content`'s neighbour `search_results`.
    for (let at = detail.indexOf(text); at >= 0; at = detail.indexOf(text, at + 1)) {
      const end = at + text.length;
      if (!WORD.test(detail[at - 1] ?? "") && !WORD.test(detail[end] ?? "")) spans.push([at, end]);
    }
  }
  if (long.length === 0) return spans;
  for (let position = 0; position + WINDOW <= detail.length; position += STEP) {
    const window = detail.slice(position, position + WINDOW);
    for (const text of long) {
      const at = text.indexOf(window);
      if (at < 0) continue;
      const span = matchAround(detail, text, position, at);
      spans.push(span);
      position = Math.max(position, span[1] - WINDOW);
      break;
    }
  }
  return spans;
}

/**
 * An upstream's error text, for the log, without the request's texts it quotes (vLLM's and
 * LiteLLM's validation errors quote their input, pydantic's cut in the middle; OpenAI's quote a
 * tool's name): whole or in part, as written or escaped (JSON, a Python repr), read unescaped.
 * Prompts are redacted everywhere else in the log. The attempt's own message keeps them: it goes
 * to the tenant who sent them. Only failures pay for it (an error text is at most a few hundred
 * characters: a few dozen lookups in the prompt).
 */
export function withoutPromptText(detail: string, request: ChatRequest): string {
  const texts: string[] = [];
  for (const text of promptTexts(request)) if (text.length >= MIN_TEXT_LENGTH) texts.push(text);
  if (texts.length === 0) return detail;
  // As written (a prompt holding backslashes, quoted as is) and read unescaped, cut from the text
  // as written either way: nothing else of it changes.
  const spans = quotedSpans(detail, texts);
  const escaped = unescaped(detail);
  if (escaped) {
    for (const [start, end] of quotedSpans(escaped.read, texts)) {
      spans.push([escaped.from[start] as number, escaped.to[end - 1] as number]);
    }
  }
  if (spans.length === 0) return detail;
  spans.sort((a, b) => a[0] - b[0]);
  // Overlapping or touching spans are one quote: one [redacted].
  let out = "";
  let cut = -1;
  for (const [start, end] of spans) {
    if (start <= cut) {
      cut = Math.max(cut, end);
      continue;
    }
    out += `${detail.slice(Math.max(cut, 0), start)}${REDACTED}`;
    cut = end;
  }
  return out + detail.slice(cut);
}
