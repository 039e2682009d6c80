// The shape of a recorded key-value client history, and the checks that reject a malformed one.
// A recorder bug (a missing completion time, a reused id) would otherwise surface as a bogus
// "violation" or, worse, a bogus "linearizable", so we refuse such input loudly and early.

export type OpStatus = 'ok' | 'fail' | 'unknown';

export interface KvOperation {
  /** Unique within the history. */
  readonly id: number;
  readonly clientId: number;
  readonly key: string;
  readonly kind: 'put' | 'get' | 'delete';
  /** For put: the value written. */
  readonly value?: string;
  /** For get with status ok: the value read, null when the key was absent. */
  readonly output?: string | null;
  /** For delete with status ok: true if a value existed and was removed, false if the key was absent. */
  readonly deleted?: boolean;
  /** Any monotonic clock (simulated ms, or performance.now()). */
  readonly invokeTime: number;
  /** Null when status is 'unknown'. */
  readonly completeTime: number | null;
  /**
   * ok: completed with a known result. unknown: may have taken effect at any point after its
   * invocation, or never. fail: definitely not applied.
   */
  readonly status: OpStatus;
}

/** Thrown for a history the checker cannot meaningfully judge. */
export class InvalidHistoryError extends Error {
  override readonly name = 'InvalidHistoryError';
  constructor(
    message: string,
    /** The offending operation's id, when one operation is to blame. */
    readonly operationId?: number,
  ) {
    super(message);
  }
}

const KINDS: ReadonlySet<string> = new Set(['put', 'get', 'delete']);
const STATUSES: ReadonlySet<string> = new Set(['ok', 'fail', 'unknown']);

/**
 * Throws InvalidHistoryError on the first problem found. Histories often come from untyped
 * sources (JSON files written by the fault tests), so the checks do not trust the static types.
 */
export function validateHistory(history: readonly KvOperation[]): void {
  const seen = new Set<number>();
  for (const op of history) {
    const where = `operation ${String(op.id)}`;
    const fail = (problem: string): never => {
      throw new InvalidHistoryError(`invalid history: ${where}: ${problem}`, op.id);
    };
    if (!Number.isInteger(op.id)) fail('id must be an integer');
    if (seen.has(op.id)) fail('duplicate id');
    seen.add(op.id);
    if (typeof op.key !== 'string') fail('key must be a string');
    if (!KINDS.has(op.kind)) fail(`unknown kind ${JSON.stringify(op.kind)}`);
    if (!STATUSES.has(op.status)) fail(`unknown status ${JSON.stringify(op.status)}`);
    if (!Number.isFinite(op.invokeTime)) fail('invokeTime must be a finite number');
    // A put without its value cannot be matched against reads, whatever its status.
    if (op.kind === 'put' && typeof op.value !== 'string') fail('put without a string value');

    const complete = op.completeTime;
    if (op.status === 'ok') {
      if (complete === null || complete === undefined) fail('status ok but completeTime is missing');
      if (op.kind === 'get' && op.output !== null && typeof op.output !== 'string') {
        fail('get with status ok must have an output (a string, or null for absent)');
      }
      if (op.kind === 'delete' && typeof op.deleted !== 'boolean') {
        fail('delete with status ok must say whether it deleted something');
      }
    }
    // An unknown op's completeTime (when a recorder fills it with the moment it gave up) is
    // ignored, but a time travelling one still betrays a broken clock.
    if (complete !== null && complete !== undefined) {
      if (!Number.isFinite(complete)) fail('completeTime must be a finite number or null');
      if (complete < op.invokeTime) {
        fail(`completeTime ${String(complete)} is before invokeTime ${String(op.invokeTime)}`);
      }
    }
  }
}
