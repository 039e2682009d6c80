// Human-readable text for a violation. The checker's verdict is only useful if someone can find
// the bug from it, so the explanation shows the end of the longest linearizable prefix, the
// state it left, the operation that could not be placed and why, and its concurrent peers.

import type { KvOperation } from './history.js';
import { whyIllegal } from './model.js';

/** How many of the last linearized operations to show: enough context, not a wall of text. */
const PREFIX_TAIL = 6;
/** How many concurrent pending operations to show (unknown ones can pile up). */
const PENDING_SHOWN = 10;

export function formatTime(t: number | null): string {
  if (t === null || !Number.isFinite(t)) return '∞';
  return Number.isInteger(t) ? String(t) : String(Number(t.toFixed(3)));
}

function formatValue(v: string | null | undefined): string {
  return v === null || v === undefined ? 'absent' : JSON.stringify(v);
}

/** One line per operation, e.g. `#7 client 2 get -> "a" [50, 60]` or `#3 client 1 put "b" unknown [12, ∞)`. */
export function formatOperation(op: KvOperation): string {
  let what: string;
  switch (op.kind) {
    case 'put':
      what = `put ${formatValue(op.value)}`;
      break;
    case 'get':
      what = op.status === 'ok' ? `get -> ${formatValue(op.output)}` : 'get';
      break;
    case 'delete':
      what = op.status === 'ok' ? `delete -> ${op.deleted === true ? 'deleted' : 'was absent'}` : 'delete';
      break;
  }
  const status = op.status === 'ok' ? '' : ` ${op.status}`;
  const end = op.status === 'ok' ? `${formatTime(op.completeTime)}]` : '∞)';
  return `#${String(op.id)} client ${String(op.clientId)} ${what}${status} [${formatTime(op.invokeTime)}, ${end}`;
}

export interface StuckOperations {
  readonly prefix: readonly KvOperation[];
  /** The register after `prefix`: the value, or null when absent. */
  readonly state: string | null;
  readonly blocked: KvOperation;
  readonly pending: readonly KvOperation[];
}

export interface ViolationReport {
  readonly explanation: string;
  /** The operations the explanation shows, by invocation time: the window around the failure. */
  readonly window: readonly KvOperation[];
}

export function explainViolation(key: string, operationCount: number, stuck: StuckOperations): ViolationReport {
  const tail = stuck.prefix.slice(-PREFIX_TAIL);
  const pending = [...stuck.pending].sort(byInvokeTime).slice(-PENDING_SHOWN);
  const lines: string[] = [`key ${JSON.stringify(key)}: not linearizable (${count(operationCount, 'operation')} on this key).`];

  if (stuck.prefix.length === 0) {
    lines.push('Not even the first operation can be linearized; the key starts absent.');
  } else {
    const omitted = stuck.prefix.length - tail.length;
    lines.push(
      `Longest linearizable prefix found: ${count(stuck.prefix.length, 'operation')}` +
        (omitted > 0 ? `, last ${String(tail.length)} shown (${String(omitted)} earlier omitted):` : ':'),
    );
    for (const op of tail) lines.push(`    ${formatOperation(op)}`);
    lines.push(`  after which the key is ${formatValue(stuck.state)}.`);
  }

  const reason = whyIllegal(stuck.state, stuck.blocked);
  lines.push('Stuck: this operation had already completed, yet cannot be linearized next:');
  lines.push(`    ${formatOperation(stuck.blocked)}`);
  lines.push(
    reason !== null
      ? `  because ${reason}.`
      : '  it could take effect here, but every continuation after it failed (as did every other order tried).',
  );

  if (pending.length > 0) {
    const more = stuck.pending.length - pending.length;
    lines.push(`Concurrent operations still pending at that point${more > 0 ? ` (${String(more)} earlier not shown)` : ''}:`);
    for (const op of pending) {
      const why = whyIllegal(stuck.state, op);
      lines.push(`    ${formatOperation(op)}${why !== null ? `  (${why})` : ''}`);
    }
  }

  const window = [...tail, stuck.blocked, ...pending].sort(byInvokeTime);
  return { explanation: lines.join('\n'), window };
}

function count(n: number, noun: string): string {
  return `${String(n)} ${noun}${n === 1 ? '' : 's'}`;
}

function byInvokeTime(a: KvOperation, b: KvOperation): number {
  return a.invokeTime - b.invokeTime || a.id - b.id;
}
