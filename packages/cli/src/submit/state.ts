import {
  closeSync,
  createReadStream,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { createInterface } from "node:readline";
import { CliError } from "../errors.js";
import type { Attempt } from "../types.js";

/**
 * The resume state of `cascade submit`, an append-only JSONL log next to the results file
 * (`<out>.state.jsonl`): a header naming the input (path and content hash), then one line per
 * submitted job, written as soon as the API answers. Finished lines are the results file itself.
 * Appends are single writes of whole lines, so a crash loses at most the last, partial line,
 * which the next run ignores; the job it named is found again through its Idempotency-Key.
 */
export interface StateHeader {
  v: 1;
  kind: "cascade-submit-state";
  input: string;
  input_sha256: string;
  requests: number;
  url: string;
  route: string | null;
  model: string | null;
  webhook: string | null;
  created_at: string;
}

interface SubmittedEntry {
  line: number;
  custom_id: string;
  job_id: string;
}

export class SubmitState {
  private constructor(
    private readonly descriptor: number,
    readonly header: StateHeader,
    /** line -> job id of every line submitted so far (in any run). */
    readonly submitted: Map<number, string>,
    readonly resumed: boolean,
  ) {}

  /**
   * Opens the state for `outPath`, creating it (with `header`) for a new run. Refuses a state
   * written for other input, and a results file that has content but no state.
   */
  static open(statePath: string, outPath: string, header: StateHeader): SubmitState {
    if (!existsSync(statePath)) {
      if (existsSync(outPath) && statSync(outPath).size > 0) {
        throw new CliError(
          `${outPath} already has results but no ${statePath} to resume from; choose another --out, or delete it to start over`,
        );
      }
      const descriptor = openSync(statePath, "a");
      writeAll(descriptor, `${JSON.stringify(header)}\n`);
      return new SubmitState(descriptor, header, new Map(), false);
    }
    const lines = readFileSync(statePath, "utf8").split("\n");
    let previous: StateHeader | undefined;
    try {
      previous = JSON.parse(lines[0] ?? "") as StateHeader;
    } catch {}
    if (previous?.kind !== "cascade-submit-state") {
      throw new CliError(
        `${statePath} is not a cascade submit state file; delete it or choose another --out`,
      );
    }
    if (previous.input_sha256 !== header.input_sha256) {
      throw new CliError(
        `${statePath} belongs to a run over different input (${previous.input}, which has changed since or is another file); ` +
          "choose another --out, or delete the results file and its state to start over",
      );
    }
    const submitted = new Map<number, string>();
    for (const text of lines.slice(1)) {
      if (!text.trim()) continue;
      try {
        const entry = JSON.parse(text) as SubmittedEntry;
        if (typeof entry.line === "number" && typeof entry.job_id === "string") {
          submitted.set(entry.line, entry.job_id);
        }
      } catch {
        // A partial last line from a crash: its job is found again by its Idempotency-Key.
      }
    }
    // A crash may have left the log without its final newline: start the next entry on a line of its own.
    const descriptor = openSync(statePath, "a");
    const content = lines.join("\n");
    if (content.length > 0 && !content.endsWith("\n")) writeAll(descriptor, "\n");
    return new SubmitState(descriptor, previous, submitted, true);
  }

  recordSubmitted(line: number, customId: string, jobId: string): void {
    this.submitted.set(line, jobId);
    const entry: SubmittedEntry = { line, custom_id: customId, job_id: jobId };
    writeAll(this.descriptor, `${JSON.stringify(entry)}\n`);
  }

  close(): void {
    closeSync(this.descriptor);
  }
}

/** Writes all of `text` (a single write for anything short; a loop for the rest). */
function writeAll(descriptor: number, text: string): void {
  const buffer = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < buffer.length) offset += writeSync(descriptor, buffer, offset, buffer.length - offset);
}

/** One line of the results file. */
export interface ResultRecord {
  custom_id: string;
  job_id: string | null;
  status: string;
  model: string | null;
  cost_usd: number;
  result: unknown;
  error: { type: string; message: string; param?: string } | null;
  attempts: Attempt[];
}

/** Cuts a partial last line (a crash mid-write) so the file ends at a whole line. */
function dropPartialLastLine(path: string): void {
  const size = statSync(path).size;
  if (size === 0) return;
  const descriptor = openSync(path, "r");
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const read = readSync(descriptor, chunk, 0, end - start, start);
      const newline = chunk.subarray(0, read).lastIndexOf(10);
      if (newline >= 0) {
        if (start + newline + 1 < size) truncateSync(path, start + newline + 1);
        return;
      }
      end = start;
    }
    truncateSync(path, 0);
  } finally {
    closeSync(descriptor);
  }
}

/** The results file: read once to find finished lines, then appended to, one whole line per write. */
export class ResultsFile {
  private descriptor: number | undefined;

  constructor(readonly path: string) {}

  /** The records already written (by an interrupted run), after dropping a partial last line. */
  async readExisting(): Promise<ResultRecord[]> {
    if (!existsSync(this.path)) return [];
    dropPartialLastLine(this.path);
    const records: ResultRecord[] = [];
    const reader = createInterface({
      input: createReadStream(this.path, { encoding: "utf8" }),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    for await (const text of reader) {
      if (!text.trim()) continue;
      try {
        const record = JSON.parse(text) as ResultRecord;
        if (typeof record.custom_id === "string") records.push(record);
      } catch {
        // not ours; kept, but it marks no line as done
      }
    }
    return records;
  }

  append(record: ResultRecord): void {
    this.descriptor ??= openSync(this.path, "a");
    writeAll(this.descriptor, `${JSON.stringify(record)}\n`);
  }

  close(): void {
    if (this.descriptor !== undefined) closeSync(this.descriptor);
    this.descriptor = undefined;
  }
}
