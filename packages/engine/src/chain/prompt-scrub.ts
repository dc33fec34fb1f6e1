import type { ChatRequest } from "@cascade/shared";

const REDACTED = "[redacted]";
/** Shorter texts are left: they would take ordinary words ("Hi", "hello") with them. */
const MIN_TEXT_LENGTH = 6;
/** A quote of a text is found by its start: this many of its first characters (all of a shorter one). */
const ANCHOR_LENGTH = 16;

/** The request's own words: message texts and the tool call arguments of its history. */
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
}

/** Each quote of `text` in `detail`, from its start as far as it goes on matching, replaced. */
function scrubQuotes(detail: string, text: string): string {
  const anchor = text.slice(0, ANCHOR_LENGTH);
  let at = detail.indexOf(anchor);
  if (at < 0) return detail;
  let out = "";
  let from = 0;
  while (at >= 0) {
    let end = at + anchor.length;
    while (end - at < text.length && end < detail.length && detail[end] === text[end - at]) end++;
    out += `${detail.slice(from, at)}${REDACTED}`;
    from = end;
    at = detail.indexOf(anchor, from);
  }
  return out + detail.slice(from);
}

/**
 * An upstream's error text, for the log, without the request's texts it quotes (vLLM's and
 * LiteLLM's validation errors quote their input; OpenAI's quote a tool's name): whole or cut
 * short, as written or JSON-escaped. Prompts are redacted everywhere else in the log. Found by
 * their first characters, so a quote from the middle of a text stays. The attempt's own message
 * keeps them: it goes to the tenant who sent them.
 */
export function withoutPromptText(detail: string, request: ChatRequest): string {
  let out = detail;
  for (const text of promptTexts(request)) {
    if (text.length < MIN_TEXT_LENGTH) continue;
    out = scrubQuotes(out, text);
    const escaped = JSON.stringify(text).slice(1, -1);
    if (escaped !== text) out = scrubQuotes(out, escaped);
  }
  return out;
}
