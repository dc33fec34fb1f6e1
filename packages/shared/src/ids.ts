import { randomBytes } from "node:crypto";

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

/** Sortable-ish unique id: time prefix then 80 random bits, e.g. `job_lzx1c2a9k3m...`. */
export function newId(prefix: string, now = Date.now()): string {
  const bytes = randomBytes(16);
  let random = "";
  for (const byte of bytes) random += alphabet[byte % 36];
  return `${prefix}_${now.toString(36)}${random}`;
}

export type IdGenerator = (prefix: string) => string;
