import { z } from "zod";

/**
 * The `alerts` section of the config (contract, "Operations"): operator webhooks and rules that
 * fire above one threshold and resolve only below a lower one. schema.ts checks the names rules
 * give (routes, providers, tenants) against the rest of the config with `checkAlertRules`.
 */

const positiveInt = z.number().int().positive();
const rate = z.number().min(0).max(1);
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be the NAME of an environment variable");

/** Each rule's default thresholds: it fires above the first and resolves below the second. */
const thresholds = {
  fallback_rate: { fire: 0.2, resolve: 0.1 },
  budget_used: { fire: 0.8, resolve: 0.7 },
  queue_age: { fire: 120, resolve: 30 },
};
const resolveBelow = z.number().gt(0, "must be above 0 (an alert resolves below it)");

const fallbackRateRuleSchema = z.strictObject({
  kind: z.literal("fallback_rate"),
  route: z.string().min(1),
  window_s: positiveInt.max(86_400).default(300),
  min_requests: positiveInt.default(20),
  // Above 0: an alert resolves when its value falls below a lower one, and no value falls below 0.
  fire_above: rate
    .gt(0, "must be above 0 (an alert resolves only below it)")
    .lt(1, "must be below 1 (the share of requests never goes above 1, so the alert could never fire)")
    .default(thresholds.fallback_rate.fire),
  resolve_below: resolveBelow.max(1).optional(),
});
const breakerOpenRuleSchema = z.strictObject({
  kind: z.literal("breaker_open"),
  provider: z.string().min(1),
});
const budgetUsedRuleSchema = z.strictObject({
  kind: z.literal("budget_used"),
  tenant: z.string().min(1),
  fire_above: z.number().gt(0).max(100).default(thresholds.budget_used.fire),
  resolve_below: resolveBelow.optional(),
});
const queueAgeRuleSchema = z.strictObject({
  kind: z.literal("queue_age"),
  fire_above_s: z.number().positive().default(thresholds.queue_age.fire),
  resolve_below_s: resolveBelow.optional(),
});

/**
 * A resolve threshold left out: the default, or as far below a lower `fire_above` as the defaults
 * are apart (`fire_above: 0.05` resolves below 0.025), so that setting the one threshold never
 * makes the other, unwritten, wrong.
 */
function resolveThreshold(
  given: number | undefined,
  fire: number,
  defaults: { fire: number; resolve: number },
) {
  if (given !== undefined) return given;
  return defaults.resolve < fire ? defaults.resolve : (fire * defaults.resolve) / defaults.fire;
}

/** One alert rule; a rule fires above one threshold and resolves only below a lower one. */
export const alertRuleSchema = z
  .discriminatedUnion("kind", [
    fallbackRateRuleSchema,
    breakerOpenRuleSchema,
    budgetUsedRuleSchema,
    queueAgeRuleSchema,
  ])
  .superRefine((rule, context) => {
    const [fire, resolve, names] =
      rule.kind === "queue_age"
        ? [rule.fire_above_s, rule.resolve_below_s, ["fire_above_s", "resolve_below_s"]]
        : rule.kind === "breaker_open"
          ? [1, undefined, []]
          : [rule.fire_above, rule.resolve_below, ["fire_above", "resolve_below"]];
    if (resolve !== undefined && resolve >= fire) {
      context.addIssue({
        code: "custom",
        path: [names[1] ?? "resolve_below"],
        message: `must be below ${names[0]} (${fire}), so that an alert does not flap`,
      });
    }
  })
  .transform((rule) => {
    switch (rule.kind) {
      case "fallback_rate":
        return {
          ...rule,
          resolve_below: resolveThreshold(rule.resolve_below, rule.fire_above, thresholds.fallback_rate),
        };
      case "budget_used":
        return {
          ...rule,
          resolve_below: resolveThreshold(rule.resolve_below, rule.fire_above, thresholds.budget_used),
        };
      case "queue_age":
        return {
          ...rule,
          resolve_below_s: resolveThreshold(rule.resolve_below_s, rule.fire_above_s, thresholds.queue_age),
        };
      default:
        return rule;
    }
  });
export type AlertRuleConfig = z.infer<typeof alertRuleSchema>;

export const alertsSchema = z
  .strictObject({
    /** Operator endpoints every alert.fired / alert.resolved webhook goes to. */
    webhook_urls: z
      .array(z.url({ protocol: /^https?$/ }))
      .max(20)
      .default([]),
    webhook_secret_env: envName.optional(),
    rules: z.array(alertRuleSchema).max(200).default([]),
  })
  .refine((alerts) => alerts.webhook_urls.length === 0 || alerts.webhook_secret_env !== undefined, {
    message: "webhook_urls need a webhook_secret_env (a whsec_ secret signs the alert webhooks)",
    path: ["webhook_secret_env"],
  });
export type AlertsConfig = z.infer<typeof alertsSchema>;

/** Alert rules name things that exist: a route, a provider, a tenant with a budget; no rule twice. */
export function checkAlertRules(
  config: {
    routes: Record<string, unknown>;
    providers: Record<string, unknown>;
    tenants?: Record<string, { budget?: { daily_usd?: number; monthly_usd?: number } | undefined }>;
    alerts?: AlertsConfig | undefined;
  },
  context: z.RefinementCtx,
): void {
  const seen = new Set<string>();
  config.alerts?.rules.forEach((rule, index) => {
    const path = ["alerts", "rules", index];
    const issue = (field: string, message: string) =>
      context.addIssue({ code: "custom", path: [...path, field], message });
    let target = "completions";
    if (rule.kind === "fallback_rate") {
      target = rule.route;
      if (!Object.hasOwn(config.routes, rule.route)) issue("route", `unknown route "${rule.route}"`);
    } else if (rule.kind === "breaker_open") {
      target = rule.provider;
      if (!Object.hasOwn(config.providers, rule.provider))
        issue("provider", `unknown provider "${rule.provider}"`);
    } else if (rule.kind === "budget_used") {
      target = rule.tenant;
      const tenant =
        config.tenants && Object.hasOwn(config.tenants, rule.tenant)
          ? config.tenants[rule.tenant]
          : undefined;
      if (!tenant) issue("tenant", `unknown tenant "${rule.tenant}"`);
      else if (!(tenant.budget?.daily_usd || tenant.budget?.monthly_usd))
        issue(
          "tenant",
          `tenant "${rule.tenant}" has no budget (daily_usd or monthly_usd above 0) to measure`,
        );
    }
    const name = `${rule.kind}:${target}`;
    if (seen.has(name)) issue("kind", `a second ${name} rule; one rule per kind and subject`);
    seen.add(name);
  });
}
