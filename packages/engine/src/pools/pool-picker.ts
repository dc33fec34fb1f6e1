import type { PoolStrategy } from "@cascade/shared";
import type { ModelTarget } from "./model-targets.js";
import type { DeploymentState } from "./pool-signals.js";

/** Above any moving average (ms): a deployment that failed lately ranks behind every other. */
const FAILED_RANK = 1e12;

/**
 * The order in which a hop tries a pool's deployments: those open, probing or cooling down last
 * (they are asked only to learn when they return), the rest by the model's strategy. Ties, and
 * `weighted`, go by weighted random order (Efraimidis–Spirakis: each draws random^(1/weight)).
 */
export function orderDeployments(
  strategy: PoolStrategy,
  targets: readonly ModelTarget[],
  states: readonly DeploymentState[],
  random: () => number,
): number[] {
  const draw = targets.map((target) => random() ** (1 / (target.deployment?.weight ?? 1)));
  const by = (index: number): number => {
    const state = states[index] as DeploymentState;
    const weight = targets[index]?.deployment?.weight ?? 1;
    switch (strategy) {
      case "most_headroom":
        return -state.headroom;
      case "least_busy":
        return state.inFlight / weight;
      case "lowest_latency":
        // A deployment never measured is tried first, so that every one gets measured; one whose
        // last call failed lately goes after all that did not (a refused key is never measured:
        // it would otherwise go first on every request).
        return (state.failedRecently ? FAILED_RANK : 0) + (state.latencyMs ?? -1);
      case "weighted":
        return 0;
    }
  };
  return targets
    .map((_, index) => index)
    .sort((a, b) => {
      const blocked = Number(states[a]?.blocked) - Number(states[b]?.blocked);
      if (blocked !== 0) return blocked;
      return by(a) - by(b) || (draw[b] as number) - (draw[a] as number);
    });
}
