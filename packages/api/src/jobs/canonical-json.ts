/**
 * JSON with object keys sorted at every depth: two bodies that differ only in key order (which
 * JSON says nothing about) serialise to the same text, so an Idempotency-Key retry whose client
 * rebuilt the body in another order is still the same request.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  // No prototype: a key named "__proto__" stays a key instead of replacing the prototype.
  const sorted: Record<string, unknown> = Object.create(null);
  for (const key of Object.keys(value).sort()) {
    sorted[key] = sortKeys((value as Record<string, unknown>)[key]);
  }
  return sorted;
}
