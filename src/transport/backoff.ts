// Reconnect delays: exponential, capped, with jitter. Without jitter, every node that lost the same
// peer would redial it in lockstep the moment it returns; without a cap, a peer that was down for a
// minute would wait a minute more after it came back.

export interface BackoffOptions {
  readonly backoffMsMin: number;
  readonly backoffMsMax: number;
  /** A number in [0, 1); injectable so tests can pin it. */
  readonly random?: () => number;
}

/**
 * The delay before reconnect attempt `attempt` (1 for the first retry): with ceiling =
 * min(max, min * 2^(attempt-1)), a uniform draw from [max(min, ceiling / 2), ceiling], so the delay
 * stays within [min, max], roughly doubles per failure, and redials spread apart.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions): number {
  const { backoffMsMin: min, backoffMsMax: max } = options;
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(max, min * 2 ** exponent);
  const floor = Math.min(ceiling, Math.max(min, ceiling / 2));
  return Math.round(floor + random() * (ceiling - floor));
}
