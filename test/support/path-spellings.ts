/** Every way we know to write one path that a router might read as the same route. */
export function spellings(path: string): string[] {
  const segments = path.split("/").slice(1);
  const encodeChar = (char: string) => `%${char.charCodeAt(0).toString(16).padStart(2, "0")}`;
  const encodeAll = (text: string) => [...text].map(encodeChar).join("");
  const lowerHex = (text: string) => encodeAll(text).toLowerCase();
  const first = segments[0] ?? "";
  const rest = segments.slice(1).join("/");
  const variants = new Set<string>([
    path,
    `/${encodeChar(first[0] ?? "")}${first.slice(1)}${rest ? `/${rest}` : ""}`,
    `/${encodeAll(first)}${rest ? `/${rest}` : ""}`,
    `/${lowerHex(first)}${rest ? `/${rest}` : ""}`,
    `/${segments.map(encodeAll).join("/")}`,
    `/${segments.join("%2F")}`,
    `/${segments.join("%2f")}`,
    `/./${segments.join("/")}`,
    `/${first}/./${rest}`,
    `/${first}/../${first}/${rest}`,
    `/x/../${segments.join("/")}`,
    `/%2e%2e/${segments.join("/")}`,
    `/healthz/../${segments.join("/")}`,
    `/docs/../${segments.join("/")}`,
    `//${segments.join("/")}`,
    `/${segments.join("//")}`,
    `${path}/`,
    `${path}//`,
    `${path}?x=/healthz`,
    `${path}#fragment`,
    `${path};x=1`,
    `/${first.toUpperCase()}${rest ? `/${rest}` : ""}`,
    `${path}%00`,
    `${path}%20`,
  ]);
  // The last segment (a path parameter where there is one) percent-encoded on its own.
  const last = segments.at(-1) ?? "";
  if (segments.length > 1 && last.length > 0) {
    variants.add(`/${segments.slice(0, -1).join("/")}/${encodeAll(last)}`);
    variants.add(`/${segments.slice(0, -1).join("/")}/${encodeChar(last[0] ?? "")}${last.slice(1)}`);
  }
  return [...variants];
}
