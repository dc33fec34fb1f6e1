/** The fewest bytes a signing key may hold: a short key is one a receiver's forger can guess. */
export const MIN_SECRET_BYTES = 16;

/**
 * Parses the value of a tenant's `webhook_secret_env`: one `whsec_<base64>` secret, or several
 * separated by spaces or commas while a secret is being rotated. Returns the decoded keys.
 * Throws an Error saying what is wrong (never echoing the secret).
 */
export function parseWebhookSecrets(value: string): Buffer[] {
  const parts = value.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) throw new Error("is empty");
  return parts.map((part, index) => {
    const encoded = part.startsWith("whsec_") ? part.slice("whsec_".length) : part;
    const key = /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ? Buffer.from(encoded, "base64") : Buffer.alloc(0);
    if (key.length === 0) {
      throw new Error(
        `secret ${index + 1} is not whsec_ followed by base64 (as Standard Webhooks secrets are)`,
      );
    }
    if (key.length < MIN_SECRET_BYTES) {
      throw new Error(
        `secret ${index + 1} holds ${key.length} bytes, too few to sign with: use at least ${MIN_SECRET_BYTES} random bytes (Standard Webhooks secrets hold 24 to 64; e.g. whsec_$(openssl rand -base64 32))`,
      );
    }
    return key;
  });
}
