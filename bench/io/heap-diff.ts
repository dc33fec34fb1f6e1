/**
 * DIAGNOSTIC: what a worker holds per in-flight job, from two heap snapshots of
 * `pnpm bench:io --heap-snapshot <dir>` (idle before round 1, then in its window): self size and
 * count by object kind (constructor or type), the difference divided by the jobs in flight.
 *
 *   node --import tsx bench/io/heap-diff.ts <idle.heapsnapshot> <loaded.heapsnapshot> --jobs 500 [--top 40]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count per kind: `<type>:<name>` (objects by constructor name, strings, code, ...). */
export function sizesByKind(snapshot: Snapshot): Map<string, { size: number; count: number }> {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const kinds = new Map<string, { size: number; count: number }>();
  for (let index = 0; index < snapshot.nodes.length; index += width) {
    const type = types[snapshot.nodes[index + typeAt] as number] ?? "?";
    const rawName = snapshot.strings[snapshot.nodes[index + nameAt] as number] ?? "";
    // Strings, numbers and code are grouped by type; objects and closures by name.
    const name =
      type === "object" || type === "closure" || type === "native"
        ? rawName.slice(0, 80)
        : type === "array"
          ? rawName.slice(0, 40)
          : "";
    const kind = `${type}:${name}`;
    const entry = kinds.get(kind) ?? { size: 0, count: 0 };
    entry.size += snapshot.nodes[index + sizeAt] as number;
    entry.count += 1;
    kinds.set(kind, entry);
  }
  return kinds;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { jobs: { type: "string", default: "1" }, top: { type: "string", default: "40" } },
  });
  const [idlePath, loadedPath] = positionals;
  if (!idlePath || !loadedPath) throw new Error("usage: heap-diff.ts <idle> <loaded> --jobs N [--top N]");
  const jobs = Number(values.jobs);
  const idle = sizesByKind(JSON.parse(readFileSync(idlePath, "utf8")) as Snapshot);
  const loaded = sizesByKind(JSON.parse(readFileSync(loadedPath, "utf8")) as Snapshot);
  const total = (kinds: Map<string, { size: number }>) =>
    [...kinds.values()].reduce((sum, e) => sum + e.size, 0);
  const rows = [...new Set([...idle.keys(), ...loaded.keys()])]
    .map((kind) => {
      const before = idle.get(kind) ?? { size: 0, count: 0 };
      const after = loaded.get(kind) ?? { size: 0, count: 0 };
      return { kind, bytes: (after.size - before.size) / jobs, count: (after.count - before.count) / jobs };
    })
    .sort((a, b) => b.bytes - a.bytes);
  console.log(
    `heap ${(total(idle) / 2 ** 20).toFixed(1)} MiB idle → ${(total(loaded) / 2 ** 20).toFixed(1)} MiB loaded: ` +
      `${((total(loaded) - total(idle)) / jobs / 1024).toFixed(2)} KiB per job (${jobs} jobs)`,
  );
  console.log("bytes/job  objects/job  kind");
  for (const row of rows.slice(0, Number(values.top))) {
    console.log(`${row.bytes.toFixed(0).padStart(9)}  ${row.count.toFixed(2).padStart(11)}  ${row.kind}`);
  }
}

main();
