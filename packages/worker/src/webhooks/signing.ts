import { createHmac } from "node:crypto";

export { MIN_SECRET_BYTES, parseWebhookSecrets } from "@cascade/shared";

/**
 * The Standard Webhooks `webhook-signature` header: `v1,<base64 HMAC-SHA256>` of
 * `{id}.{timestamp}.{body}` per key, space-separated, so receivers holding either the old or the
 * new secret verify during a rotation. https://www.standardwebhooks.com/
 */
export function signWebhook(
  keys: readonly Buffer[],
  id: string,
  timestampSeconds: number,
  body: string,
): string {
  const content = `${id}.${timestampSeconds}.${body}`;
  return keys.map((key) => `v1,${createHmac("sha256", key).update(content).digest("base64")}`).join(" ");
}
