/**
 * A field's path as OpenAI's API names it in an error's `param` and message: array elements in
 * brackets, object keys after dots (`messages[0].content`, `tools[1].function.name`,
 * `logit_bias.50256`). A number is an array index; a string is an object key, digits or not.
 */
export function fieldPath(segments: ReadonlyArray<PropertyKey>): string {
  let path = "";
  for (const segment of segments) {
    if (typeof segment === "number") path += `[${segment}]`;
    else path += path === "" ? String(segment) : `.${String(segment)}`;
  }
  return path;
}

/**
 * The typed segments of a path given as strings (as fastify-type-provider-zod hands zod's issues
 * over, `/request/messages/0/content`), told apart by walking `root`: a segment is an index where
 * the value it steps into is an array.
 */
export function typedSegments(segments: readonly string[], root: unknown): PropertyKey[] {
  const typed: PropertyKey[] = [];
  let node = root;
  for (const segment of segments) {
    const inArray = Array.isArray(node) && /^(0|[1-9]\d*)$/.test(segment);
    typed.push(inArray ? Number(segment) : segment);
    node =
      node !== null && typeof node === "object" && Object.hasOwn(node, segment)
        ? (node as Record<string, unknown>)[segment]
        : undefined;
  }
  return typed;
}
