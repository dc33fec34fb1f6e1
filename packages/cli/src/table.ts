import { stripVTControlCharacters } from "node:util";

export type Align = "left" | "right";

/** Lays out rows in columns padded to the widest cell (ANSI colour does not count as width). */
export function renderTable(
  header: string[],
  rows: string[][],
  options: { align?: Align[]; gap?: number; indent?: string } = {},
): string {
  const gap = " ".repeat(options.gap ?? 2);
  const all = [header, ...rows];
  const widths = header.map((_, column) =>
    Math.max(...all.map((row) => stripVTControlCharacters(row[column] ?? "").length)),
  );
  return all
    .map((row) =>
      row
        .map((cell, column) => {
          const pad = " ".repeat(Math.max(0, (widths[column] ?? 0) - stripVTControlCharacters(cell).length));
          if (column === row.length - 1 && options.align?.[column] !== "right") return cell;
          return options.align?.[column] === "right" ? pad + cell : cell + pad;
        })
        .join(gap)
        .replace(/\s+$/, ""),
    )
    .map((line) => (options.indent ?? "") + line)
    .join("\n");
}
