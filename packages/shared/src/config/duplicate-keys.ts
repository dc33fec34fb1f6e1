import { type Document, isMap, isScalar, visit } from "yaml";

/** A key written twice in one map or object: the second one, and where it starts (1-based). */
export interface DuplicateKey {
  key: string;
  line: number;
  column: number;
}

/** "Map keys must be unique at line …, column …: …" (the YAML parser's own words). */
export function duplicateKeyMessage(duplicate: DuplicateKey): string {
  return `Map keys must be unique at line ${duplicate.line}, column ${duplicate.column}: "${duplicate.key}" is written twice`;
}

/**
 * The first key written twice in one JSON object of `text`, which JSON.parse has already read
 * (it keeps the last of two equal keys without a word). One pass, with a set of keys per open
 * object: the YAML parser's own check compares each key with every key before it, which takes
 * seconds for a map of tens of thousands of entries. Keys compare as JSON.parse reads them.
 */
export function jsonDuplicateKey(text: string): DuplicateKey | undefined {
  /** Per open object or array: the object's keys, or null for an array. */
  const open: (Set<string> | null)[] = [];
  /** In an object, whether the next string is a key (after `{` or `,`). */
  let keyNext = false;
  let line = 1;
  let lineStart = 0;
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (char === 0x0a) {
      line++;
      lineStart = index + 1;
    } else if (char === 0x22) {
      const start = index;
      // The closing quote: the first one not escaped (JSON strings hold no raw newline).
      for (index++; text.charCodeAt(index) !== 0x22; index++) if (text.charCodeAt(index) === 0x5c) index++;
      const keys = open.at(-1);
      if (keyNext && keys) {
        keyNext = false;
        const raw = text.slice(start, index + 1);
        const key = raw.includes("\\") ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (keys.has(key)) return { key, line, column: start - lineStart + 1 };
        keys.add(key);
      }
    } else if (char === 0x7b) {
      open.push(new Set());
      keyNext = true;
    } else if (char === 0x5b) {
      open.push(null);
      keyNext = false;
    } else if (char === 0x7d || char === 0x5d) {
      open.pop();
      keyNext = false;
    } else if (char === 0x2c) {
      keyNext = open.at(-1) != null;
    }
  }
  return undefined;
}

/**
 * The first key written twice in one map of a YAML document parsed with `uniqueKeys: false`, as
 * the parser's own check finds it (scalar keys equal in value; `1` and `'1'` differ), in one pass.
 */
export function yamlDuplicateKey(document: Document.Parsed, source: string): DuplicateKey | undefined {
  let found: { key: string; offset: number } | undefined;
  visit(document, {
    Map(_, map) {
      if (!isMap(map)) return undefined;
      const keys = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const value = pair.key.value;
        if (keys.has(value)) {
          found = { key: String(value), offset: pair.key.range?.[0] ?? 0 };
          return visit.BREAK;
        }
        keys.add(value);
      }
      return undefined;
    },
  });
  if (!found) return undefined;
  const lineStart = source.lastIndexOf("\n", found.offset - 1) + 1;
  let line = 1;
  for (
    let index = source.indexOf("\n");
    index !== -1 && index < lineStart;
    index = source.indexOf("\n", index + 1)
  )
    line++;
  return { key: found.key, line, column: found.offset - lineStart + 1 };
}
