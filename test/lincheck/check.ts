// Entry point: is a recorded key-value history linearizable?
//
// Linearizability is compositional (Herlihy & Wing's locality; "P-compositionality" in
// Porcupine): a history is linearizable iff each key's sub-history is. Checking keys one by one
// turns one exponential search into many small ones, which is what makes real histories cheap.

import { performance } from 'node:perf_hooks';
import { validateHistory, type KvOperation } from './history.js';
import { ABSENT, ValueTable, compileOperation, isBlindWrite, stepRegister } from './model.js';
import { searchLinearization } from './wgl.js';
import { explainViolation } from './format.js';

export type CheckResult =
  | { readonly verdict: 'linearizable'; readonly keysChecked: number; readonly operationsChecked: number }
  | { readonly verdict: 'violation'; readonly key: string; readonly explanation: string; readonly operations: readonly KvOperation[] }
  | { readonly verdict: 'unknown'; readonly key: string; readonly reason: string }; // budget exhausted

export interface CheckOptions {
  /** Wall-clock budget for the whole check; past it the answer is 'unknown'. Infinity disables it. */
  readonly timeBudgetMs?: number;
}

/** Generous for real histories (they take milliseconds), yet a pathological one cannot hang a test run. */
export const DEFAULT_TIME_BUDGET_MS = 10_000;

/** Throws InvalidHistoryError (see history.ts) when the history is malformed. */
export function checkLinearizable(history: readonly KvOperation[], options?: CheckOptions): CheckResult {
  validateHistory(history);
  const budget = options?.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS;
  const deadline = performance.now() + budget;
  const outOfTime = (): boolean => performance.now() > deadline;

  const partitions = partitionByKey(relevantOperations(history));
  // Small keys first: if the budget runs out on a hard key, the easy ones have had their say.
  const keys = [...partitions.keys()].sort(
    (a, b) => partitions.get(a)!.length - partitions.get(b)!.length || (a < b ? -1 : a > b ? 1 : 0),
  );

  let operationsChecked = 0;
  for (const key of keys) {
    const ops = partitions.get(key)!;
    // The search polls the clock only every so many steps, so many small keys could otherwise
    // overrun the budget unnoticed.
    if (outOfTime()) return { verdict: 'unknown', key, reason: `time budget exhausted before checking key ${JSON.stringify(key)}` };
    const verdict = checkKey(key, ops, outOfTime);
    if (verdict !== undefined) return verdict;
    operationsChecked += ops.length;
  }
  return { verdict: 'linearizable', keysChecked: keys.length, operationsChecked };
}

/**
 * Drops what cannot constrain the search: failed operations never took effect, and a read whose
 * reply was lost has no output to check and no effect on the state. Unknown writes and deletes
 * stay, as they may have taken effect.
 */
export function relevantOperations(history: readonly KvOperation[]): KvOperation[] {
  return history.filter((op) => op.status === 'ok' || (op.status === 'unknown' && op.kind !== 'get'));
}

export function partitionByKey(ops: readonly KvOperation[]): Map<string, KvOperation[]> {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  return byKey;
}

/** Undefined when the key's history is linearizable, otherwise the verdict to report. */
function checkKey(key: string, ops: readonly KvOperation[], outOfTime: () => boolean): CheckResult | undefined {
  const table = new ValueTable();
  const compiled = ops.map((op) => compileOperation(op, table));
  const outcome = searchLinearization({
    intervals: ops.map((op) => ({
      call: op.invokeTime,
      // An unknown operation may take effect arbitrarily late: its return never arrives.
      ret: op.status === 'ok' && op.completeTime !== null ? op.completeTime : Infinity,
    })),
    initialState: ABSENT,
    step: (state, i) => stepRegister(state, compiled[i]),
    isBlindWrite: (i) => isBlindWrite(compiled[i]),
    outOfTime,
  });

  switch (outcome.kind) {
    case 'linearizable':
      return undefined;
    case 'gave-up':
      return { verdict: 'unknown', key, reason: `key ${JSON.stringify(key)} (${String(ops.length)} operations): ${outcome.reason}` };
    case 'violation': {
      const { prefix, state, blocked, pending } = outcome.stuck;
      const report = explainViolation(key, ops.length, {
        prefix: prefix.map((i) => ops[i]),
        state: table.decode(state),
        blocked: ops[blocked],
        pending: pending.map((i) => ops[i]),
      });
      return { verdict: 'violation', key, explanation: report.explanation, operations: report.window };
    }
  }
}
