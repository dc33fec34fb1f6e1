import { PROVIDERS_USAGE, parseCommand } from "../cli-args.js";
import type { Colors } from "../colors.js";
import type { Context } from "../context.js";
import { formatDuration, formatPercent } from "../format.js";
import { renderTable } from "../table.js";
import type { BreakerView, LimitView, ProviderStatus, RecentStats } from "../types.js";

/** `cascade providers [--json]`. */
export async function providersCommand(args: string[], ctx: Context): Promise<number> {
  const { values } = parseCommand("providers", args, { json: { type: "boolean" } }, PROVIDERS_USAGE, false);
  if (values.help) {
    ctx.stdout.write(`${PROVIDERS_USAGE}\n`);
    return 0;
  }
  const { body } = await ctx.client.request<{ object: "list"; data: ProviderStatus[] }>(
    "GET",
    "/v1/providers",
  );
  if (values.json) {
    ctx.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  ctx.stdout.write(renderProviders(body.data, ctx.colors, Date.now()));
  return 0;
}

function breakerText(breaker: BreakerView | null | undefined, nowMs: number, c: Colors): string {
  if (!breaker) return "-";
  if (breaker.shared_with_provider) return c.dim("(provider's)");
  const state = breaker.state ?? "closed";
  const painted = state === "open" ? c.red(state) : state === "closed" ? c.green(state) : c.yellow(state);
  const remaining =
    state === "open" && breaker.open_until && breaker.open_until * 1000 > nowMs
      ? ` ${formatDuration(breaker.open_until * 1000 - nowMs)}`
      : "";
  return `${painted}${remaining}${breaker.forced ? c.yellow(" (forced)") : ""}`;
}

function headroomText(limits: LimitView[] | undefined, c: Colors): string {
  if (!limits?.length) return c.dim("-");
  return limits
    .map((limit) => {
      const figure = `${Math.max(0, limit.available)}/${limit.capacity}`;
      const ratio = limit.capacity > 0 ? limit.available / limit.capacity : 0;
      const painted = ratio <= 0 ? c.red(figure) : ratio < 0.2 ? c.yellow(figure) : figure;
      return `${limit.kind} ${painted}`;
    })
    .join("  ");
}

function rateText(rate: number | null | undefined, c: Colors): string {
  const text = formatPercent(rate);
  if (rate === null || rate === undefined) return c.dim(text);
  return rate >= 0.5 ? c.red(text) : rate > 0 ? c.yellow(text) : text;
}

function recentCells(recent: RecentStats | undefined, c: Colors): string[] {
  return [
    recent ? String(recent.calls) : "-",
    rateText(recent?.error_rate, c),
    rateText(recent?.fallback_rate, c),
  ];
}

/** The providers table, each provider followed by its models (indented). */
export function renderProviders(providers: ProviderStatus[], c: Colors, nowMs: number): string {
  const rows: string[][] = [];
  for (const provider of providers) {
    const cooldown =
      provider.cooldown_until && provider.cooldown_until * 1000 > nowMs
        ? c.yellow(formatDuration(provider.cooldown_until * 1000 - nowMs))
        : c.dim("-");
    rows.push([
      c.bold(provider.id),
      provider.type,
      breakerText(provider.breaker, nowMs, c),
      cooldown,
      headroomText(provider.limits, c),
      ...recentCells(provider.recent, c),
    ]);
    for (const model of provider.models ?? []) {
      const name = model.name && model.name !== model.id ? c.dim(` (${model.name})`) : "";
      rows.push([
        `  ${model.id}${name}`,
        c.dim("model"),
        breakerText(model.breaker, nowMs, c),
        "",
        headroomText(model.limits, c),
        ...recentCells(model.recent, c),
      ]);
    }
  }
  const window = providers.find((provider) => provider.recent?.window_s)?.recent?.window_s;
  const table = renderTable(
    ["PROVIDER", "TYPE", "BREAKER", "COOLDOWN", "HEADROOM", "CALLS", "ERRORS", "FALLBACK"].map((title) =>
      c.dim(title),
    ),
    rows,
    { align: ["left", "left", "left", "left", "left", "right", "right", "right"] },
  );
  const note = window
    ? c.dim(`CALLS, ERRORS and FALLBACK cover the last ${formatDuration(window * 1000)}.`)
    : "";
  return `${table}\n${note ? `${note}\n` : ""}`;
}
