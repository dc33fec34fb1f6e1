import { stripVTControlCharacters } from "node:util";
import { CLEAR_LINE, type Colors } from "../colors.js";
import type { Output } from "../context.js";
import { formatDuration, formatPercent, formatUsd } from "../format.js";

/** What a submit run has done so far (resumed lines included, except in the rate). */
export interface Tally {
  /** Request lines in the input. */
  total: number;
  succeeded: number;
  /** Failed or cancelled jobs, and lines the API refused (counted in `rejected` too). */
  failed: number;
  rejected: number;
  inFlight: number;
  /** Finished lines that ran as jobs, and how many of those fell back. */
  jobs: number;
  fellBack: number;
  spendUsd: number;
  /** Lines finished by this run (for the rate and ETA), since `startedAt` (ms). */
  finishedThisRun: number;
  startedAt: number;
}

export function newTally(total: number, startedAt: number): Tally {
  return {
    total,
    succeeded: 0,
    failed: 0,
    rejected: 0,
    inFlight: 0,
    jobs: 0,
    fellBack: 0,
    spendUsd: 0,
    finishedThisRun: 0,
    startedAt,
  };
}

export interface Figures {
  done: number;
  ratePerSecond: number | null;
  etaMs: number | null;
  fallbackRate: number | null;
  elapsedMs: number;
}

export function figures(tally: Tally, nowMs: number): Figures {
  const done = tally.succeeded + tally.failed;
  const elapsedMs = Math.max(0, nowMs - tally.startedAt);
  const ratePerSecond =
    tally.finishedThisRun > 0 && elapsedMs > 0 ? tally.finishedThisRun / (elapsedMs / 1000) : null;
  const remaining = tally.total - done;
  return {
    done,
    ratePerSecond,
    etaMs: remaining === 0 ? 0 : ratePerSecond ? (remaining / ratePerSecond) * 1000 : null,
    fallbackRate: tally.jobs > 0 ? tally.fellBack / tally.jobs : null,
    elapsedMs,
  };
}

const formatRate = (rate: number | null) =>
  rate === null ? "-" : rate >= 10 ? rate.toFixed(0) : rate.toFixed(1);

/** An ETA in whole seconds (or minutes and hours), "-" when unknown. */
export function formatEta(milliseconds: number | null): string {
  if (milliseconds === null) return "-";
  if (milliseconds < 60_000) return `${Math.ceil(milliseconds / 1000)}s`;
  return formatDuration(milliseconds);
}

/** The live line on a terminal: the counts, after a bar when the terminal is wide enough. */
export function renderBar(tally: Tally, nowMs: number, columns: number, colors: Colors): string {
  const figuresNow = figures(tally, nowMs);
  const percent = tally.total > 0 ? Math.floor((figuresNow.done / tally.total) * 100) : 0;
  const text = [
    `${figuresNow.done}/${tally.total} ${colors.dim(`(${percent}%)`)} ${colors.green("✓")} ${tally.succeeded} ${colors.red("✗")} ${tally.failed}`,
    `${tally.inFlight} in flight`,
    `${formatRate(figuresNow.ratePerSecond)} jobs/s`,
    `ETA ${formatEta(figuresNow.etaMs)}`,
    `fallback ${formatPercent(figuresNow.fallbackRate)}`,
    formatUsd(tally.spendUsd),
  ].join(colors.dim(" · "));
  const width = stripVTControlCharacters(text).length;
  const room = columns - width - 3;
  if (room < 10)
    return width < columns ? text : stripVTControlCharacters(text).slice(0, Math.max(0, columns - 1));
  const barWidth = Math.min(30, room);
  const filled = tally.total > 0 ? Math.floor((figuresNow.done / tally.total) * barWidth) : 0;
  return `${colors.green("█".repeat(filled))}${colors.dim("░".repeat(barWidth - filled))}  ${text}`;
}

/** The periodic line when stderr is not a terminal. */
export function renderLine(tally: Tally, nowMs: number): string {
  const figuresNow = figures(tally, nowMs);
  return (
    `progress: ${figuresNow.done}/${tally.total} done (${tally.succeeded} succeeded, ${tally.failed} failed), ` +
    `${tally.inFlight} in flight, ${formatRate(figuresNow.ratePerSecond)} jobs/s, ` +
    `ETA ${formatEta(figuresNow.etaMs)}, fallback ${formatPercent(figuresNow.fallbackRate)}, ` +
    `spend ${formatUsd(tally.spendUsd)}`
  );
}

/**
 * Shows progress on stderr: on a terminal a bar redrawn at most 10 times a second (only when it
 * changed); otherwise a plain line every `intervalMs`. `log` prints a message above the bar.
 */
export class ProgressReporter {
  private timer: NodeJS.Timeout | undefined;
  private shown = "";

  constructor(
    private readonly stream: Output,
    private readonly tally: Tally,
    private readonly options: { tty: boolean; intervalMs: number; colors: Colors; now?: () => number },
  ) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  start(): void {
    if (this.options.tty) {
      this.timer = setInterval(() => this.draw(), 100);
      this.draw();
    } else {
      this.timer = setInterval(
        () => this.stream.write(`${renderLine(this.tally, this.now())}\n`),
        this.options.intervalMs,
      );
    }
    this.timer.unref();
  }

  private draw(): void {
    const line = renderBar(this.tally, this.now(), this.stream.columns || 80, this.options.colors);
    if (line === this.shown) return;
    this.stream.write(`${CLEAR_LINE}${line}`);
    this.shown = line;
  }

  /** Prints a message on its own line (above the bar on a terminal). */
  log(text: string): void {
    if (this.options.tty && this.shown) this.stream.write(CLEAR_LINE);
    this.stream.write(`${text}\n`);
    if (this.options.tty && this.timer) {
      this.shown = "";
      this.draw();
    }
  }

  /** Stops redrawing and clears the bar. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.options.tty && this.shown) this.stream.write(CLEAR_LINE);
    this.shown = "";
  }
}
