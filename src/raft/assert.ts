// Invariant checks. A failed assertion is a bug in the core, never a normal path: the process must
// stop rather than carry on with state it can no longer trust.

export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError';
}

export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === 'string' ? message : message());
  }
}
