/**
 * Reading a body as the AI SDK does (`@ai-sdk/provider-utils`: TextDecoder, `secureJsonParse`),
 * so that the lean client accepts and refuses exactly the bodies the SDK path does.
 */

const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;

/** UTF-8 text of a body; a leading byte-order mark is dropped, as TextDecoder drops it. */
export function bodyText(body: Buffer): string {
  const start = body[0] === UTF8_BOM[0] && body[1] === UTF8_BOM[1] && body[2] === UTF8_BOM[2] ? 3 : 0;
  return body.toString("utf8", start);
}

// The same patterns as secure-json-parse (and the SDK's copy of it): a key spelled __proto__ or
// constructor, escapes included. Only a body that matches is walked.
const suspectProto =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const suspectConstructor =
  /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;

function hasForbiddenKey(root: object): boolean {
  let next: object[] = [root];
  while (next.length) {
    const nodes = next;
    next = [];
    for (const node of nodes) {
      if (Object.hasOwn(node, "__proto__")) return true;
      const ownConstructor = (node as { constructor?: unknown }).constructor;
      if (
        Object.hasOwn(node, "constructor") &&
        ownConstructor !== null &&
        typeof ownConstructor === "object" &&
        Object.hasOwn(ownConstructor, "prototype")
      ) {
        return true;
      }
      for (const key in node) {
        const value = (node as Record<string, unknown>)[key];
        if (value && typeof value === "object") next.push(value);
      }
    }
  }
  return false;
}

/** `{ ok: true, value }`, or `{ ok: false }` where the SDK's parse would throw. */
export function parseJsonSecurely(
  text: string,
): { ok: true; value: unknown } | { ok: false; error: unknown } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error };
  }
  if (
    value !== null &&
    typeof value === "object" &&
    (suspectProto.test(text) || suspectConstructor.test(text)) &&
    hasForbiddenKey(value)
  ) {
    return { ok: false, error: new SyntaxError("Object contains forbidden prototype property") };
  }
  return { ok: true, value };
}
