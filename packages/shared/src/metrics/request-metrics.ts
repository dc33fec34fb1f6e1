import { type FinishedRequest, fellBack, type RequestObserver } from "../requests/finished-request.js";
import { isStoppedAttempt } from "../schemas/job.js";
import { type CascadeMetrics, labelValue } from "./cascade-metrics.js";

/**
 * The reason a request left its first model: that of its first attempt that did not succeed
 * (an error or a skip). A job's attempts are kept in its progress across runs, so a job resumed
 * after a wait or a crash still names its first failure.
 */
function fallbackReason(request: FinishedRequest): string {
  return labelValue(
    request.attempts.find((attempt) => attempt.outcome !== "success" && !isStoppedAttempt(attempt))?.reason,
  );
}

/**
 * Counts finished requests into the process's metrics. Cost goes under the answering model: the
 * attempts carry no cost of their own, so the whole request's cost (failed attempts included) is
 * credited to the model that answered, or to the chain's first model when none did. Durations are
 * those of jobs only (a gateway request has no queue; its calls are in the hop histogram).
 */
export function requestMetricsObserver(metrics: CascadeMetrics): RequestObserver {
  return {
    finished(request) {
      const route = labelValue(request.route);
      const tenant = labelValue(request.tenant);
      const status = request.status;
      const counter = request.door === "job" ? metrics.jobs : metrics.gatewayRequests;
      counter.inc({ route, tenant, status });
      const model = labelValue(request.model ?? request.firstModel);
      metrics.costUsd.inc({ tenant, route, model }, Math.max(0, request.costUsd));
      if (fellBack(request)) {
        metrics.fallbacks.inc({
          route,
          from: labelValue(request.firstModel),
          to: model,
          reason: fallbackReason(request),
        });
      }
      if (request.door !== "job") return;
      if (request.startedAtMs !== undefined) {
        const waitedMs = Math.max(0, request.startedAtMs - request.createdAtMs);
        metrics.queueWait.observe({ route }, waitedMs / 1000);
      }
      const tookMs = Math.max(0, request.finishedAtMs - request.createdAtMs);
      metrics.jobDuration.observe({ route, status }, tookMs / 1000);
    },
    charged(charge) {
      if (!(charge.costUsd > 0)) return;
      const labels = {
        tenant: labelValue(charge.tenant),
        route: labelValue(charge.route),
        model: labelValue(charge.model ?? charge.firstModel),
      };
      metrics.costUsd.inc(labels, charge.costUsd);
    },
  };
}
