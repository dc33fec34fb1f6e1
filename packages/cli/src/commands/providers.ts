import { PROVIDERS_USAGE, parseCommand } from "../cli-args.js";
import type { Colors } from "../colors.js";
import type { Context } from "../context.js";
import { formatDuration, formatPercent } from "../format.js";
import { renderTable } from "../table.js";
import type { BreakerView, LimitView, ProviderStatus, RecentStats } from "../types.js";

/** `cascade providers [--json]`. */
export async function providersCommand(args: string[], context: Context): Promise<number> {
  const { values } = parseCommand("providers", args, { json: { type: "boolean" } }, PROVIDERS_USAGE, false);
  if (values.help) {
    context.stdout.write(`${PROVIDERS_USAGE}\n`);
    return 0;
  }
  const { body } = await context.client.request<{ object: "list"; data: ProviderStatus[] }>(
    "GET",
    "/v1/providers",
  );
  if (values.json) {
    context.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  context.stdout.write(renderProviders(body.data, context.colors, Date.now()));
  return 0;
}

function breakerText(breaker: BreakerView | null | undefined, nowMs: number, colors: Colors): string {
  if (!breaker) return "-";
  if (breaker.shared_with_provider) return colors.dim("(provider's)");
  const state = breaker.state ?? "closed";
  const painted =
    state === "open" ? colors.red(state) : state === "closed" ? colors.green(state) : colors.yellow(state);
  const remaining =
    state === "open" && breaker.open_until && breaker.open_until * 1000 > nowMs
      ? ` ${formatDuration(breaker.open_until * 1000 - nowMs)}`
      : "";
  return `${painted}${remaining}${breaker.forced ? colors.yellow(" (forced)") : ""}`;
}

function headroomText(limits: LimitView[] | undefined, colors: Colors): string {
  if (!limits?.length) return colors.dim("-");
  // A pool's deployment shows its own buckets and the pooled model's: each then says whose it is.
  const scoped = new Set(limits.map((limit) => limit.scope)).size > 1;
  return limits
    .map((limit) => {
      const figure = `${Math.max(0, limit.available)}/${limit.capacity}`;
      const ratio = limit.capacity > 0 ? limit.available / limit.capacity : 0;
      const painted = ratio <= 0 ? colors.red(figure) : ratio < 0.2 ? colors.yellow(figure) : figure;
      return `${scoped ? `${limit.scope} ` : ""}${limit.kind} ${painted}`;
    })
    .join("  ");
}

function rateText(rate: number | null | undefined, colors: Colors): string {
  const text = formatPercent(rate);
  if (rate === null || rate === undefined) return colors.dim(text);
  return rate >= 0.5 ? colors.red(text) : rate > 0 ? colors.yellow(text) : text;
}

function recentCells(recent: RecentStats | undefined, colors: Colors): string[] {
  return [
    recent ? String(recent.calls) : "-",
    rateText(recent?.error_rate, colors),
    rateText(recent?.fallback_rate, colors),
  ];
}

/** The providers table, each provider followed by its models (indented). */
export function renderProviders(providers: ProviderStatus[], colors: Colors, nowMs: number): string {
  const rows: string[][] = [];
  const cooldownText = (until: number | null | undefined, none: string) =>
    until && until * 1000 > nowMs ? colors.yellow(formatDuration(until * 1000 - nowMs)) : none;
  for (const provider of providers) {
    rows.push([
      colors.bold(provider.id),
      provider.type,
      breakerText(provider.breaker, nowMs, colors),
      cooldownText(provider.cooldown_until, colors.dim("-")),
      headroomText(provider.limits, colors),
      ...recentCells(provider.recent, colors),
    ]);
    for (const model of provider.models ?? []) {
      const name = model.name && model.name !== model.id ? colors.dim(` (${model.name})`) : "";
      rows.push([
        `  ${model.id}${name}`,
        colors.dim("model"),
        breakerText(model.breaker, nowMs, colors),
        cooldownText(model.cooldown_until, ""),
        headroomText(model.limits, colors),
        ...recentCells(model.recent, colors),
      ]);
    }
  }
  const window = providers.find((provider) => provider.recent?.window_s)?.recent?.window_s;
  const table = renderTable(
    ["PROVIDER", "TYPE", "BREAKER", "COOLDOWN", "HEADROOM", "CALLS", "ERRORS", "FALLBACK"].map((title) =>
      colors.dim(title),
    ),
    rows,
    { align: ["left", "left", "left", "left", "left", "right", "right", "right"] },
  );
  const note = window
    ? colors.dim(`CALLS, ERRORS and FALLBACK cover the last ${formatDuration(window * 1000)}.`)
    : "";
  return `${table}\n${note ? `${note}\n` : ""}`;
}
