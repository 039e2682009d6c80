// The checker's public surface, for the simulator and the fault tests to import from one place.
export type { KvOperation, OpStatus } from './history.js';
export { InvalidHistoryError, validateHistory } from './history.js';
export type { CheckResult, CheckOptions } from './check.js';
export { checkLinearizable, DEFAULT_TIME_BUDGET_MS } from './check.js';
export { formatOperation } from './format.js';
