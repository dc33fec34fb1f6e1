import { isUtf8 } from "node:buffer";

/**
 * Whether reading `bytes` as UTF-8 into `text` changed them: bytes that are not UTF-8 (a lone
 * `\xff`, a cut sequence, an encoded surrogate) become U+FFFD. Only a text holding U+FFFD can have
 * been changed, so the rest skip the check of the bytes.
 */
export function changedByDecoding(text: string, bytes: Uint8Array): boolean {
  return text.includes("\ufffd") && !isUtf8(bytes);
}
