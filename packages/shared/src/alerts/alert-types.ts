import type { AlertRuleConfig } from "../config/schema.js";

export type AlertKind = AlertRuleConfig["kind"];
export type AlertState = "firing" | "resolved";

/**
 * An alert as GET /v1/alerts lists it and as alert webhooks carry it (`data`). `id` is stable per
 * rule and subject (`fallback_rate:default`, `breaker_open:provider:openai`), so an alert that
 * fires again later has the same id; `rule` names the config rule (`<kind>:<route | provider |
 * tenant | queue>`). Times are unix seconds; `value` and `threshold` are in the rule's unit
 * (a fraction, or seconds for queue_age; 1 = open for breaker_open).
 */
export interface Alert {
  id: string;
  rule: string;
  kind: AlertKind;
  subject: string;
  state: AlertState;
  value: number;
  threshold: number;
  fired_at: number;
  resolved_at: number | null;
}

export type AlertEventType = "alert.fired" | "alert.resolved";

/** The body POSTed to every `alerts.webhook_urls` entry. */
export interface AlertEvent {
  type: AlertEventType;
  /** When the alert fired or resolved, ISO-8601. */
  timestamp: string;
  data: Alert;
}

/** What a rule watches: a route, a provider, a tenant, or the completions queue. */
export function ruleTarget(rule: AlertRuleConfig): string {
  switch (rule.kind) {
    case "fallback_rate":
      return rule.route;
    case "breaker_open":
      return rule.provider;
    case "budget_used":
      return rule.tenant;
    case "queue_age":
      return "completions";
  }
}

/** A rule's readable name, `<kind>:<target>`: unique in a config (the schema refuses a second). */
export function ruleName(rule: AlertRuleConfig): string {
  return `${rule.kind}:${ruleTarget(rule)}`;
}
