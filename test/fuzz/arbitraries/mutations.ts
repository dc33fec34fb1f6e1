/**
 * "Valid, then broken a little": a request body built valid so it gets past validation (and the
 * handler, the queue and the worker behind it are exercised), then, some of the time, one to three
 * mutations anywhere in its tree: a field removed, a field set to any JSON value, an unknown field
 * added, an array element dropped or replaced. Purely random JSON would almost never get past the
 * schema, so it would only ever test the validator.
 */
import fc from "fast-check";

type Mutation =
  | { kind: "remove"; at: number; key: string }
  | { kind: "set"; at: number; key: string; value: fc.JsonValue };

/** Every object and array in `value`, depth first (the root first). */
function containers(value: unknown, into: Array<Record<string, unknown> | unknown[]> = []) {
  if (value === null || typeof value !== "object") return into;
  into.push(value as Record<string, unknown> | unknown[]);
  for (const child of Object.values(value)) containers(child, into);
  return into;
}

function apply(value: unknown, mutation: Mutation): void {
  const all = containers(value);
  const target = all[mutation.at % all.length];
  if (!target) return;
  if (Array.isArray(target)) {
    const index = mutation.at % (target.length + (mutation.kind === "set" ? 1 : 0) || 1);
    if (mutation.kind === "remove") target.splice(index, 1);
    else target[index] = mutation.value;
    return;
  }
  // Mutate an existing key most of the time, so the mutations land where the schema looks.
  const existing = Object.keys(target);
  const key =
    existing.length && mutation.key === ""
      ? (existing[mutation.at % existing.length] as string)
      : mutation.key;
  if (mutation.kind === "remove") delete target[key];
  // defineProperty, so that "__proto__" becomes an own key that JSON.stringify sends.
  else
    Object.defineProperty(target, key, {
      value: mutation.value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
}

/**
 * `valid` values; with odds `mutatedWeight` : `intactWeight`, changed by one to three mutations.
 * `keys` are field names worth setting (the schema's own); "" means "a key the object already has".
 */
export function mutated<T>(
  valid: fc.Arbitrary<T>,
  keys: readonly string[],
  { intactWeight = 3, mutatedWeight = 2 } = {},
): fc.Arbitrary<unknown> {
  const key = fc.oneof(
    { weight: 4, arbitrary: fc.constant("") },
    { weight: 3, arbitrary: fc.constantFrom(...keys) },
    { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "prototype") },
    { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
  );
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("remove" as const), at: fc.nat(), key }),
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), key, value: fc.jsonValue({ maxDepth: 2 }) }),
  );
  const mutations = fc.oneof(
    { weight: intactWeight, arbitrary: fc.constant<Mutation[]>([]) },
    { weight: mutatedWeight, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
  );
  return fc.tuple(valid, mutations).map(([value, changes]) => {
    // A copy: fast-check may hand the same generated value to several runs while shrinking.
    const copy = structuredClone(value);
    for (const change of changes) apply(copy, change);
    return copy;
  });
}
