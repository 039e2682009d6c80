// Errors the state machine throws to readers. Each carries the stable code of the shared error
// catalogue (src/common/errors.ts), so the API maps it to a status without parsing messages.

/** A read named a revision whose history a compaction has removed (etcd: ErrCompacted). */
export class CompactedError extends Error {
  override readonly name = 'CompactedError';
  readonly code = 'COMPACTED';
  constructor(readonly requestedRevision: number, readonly compactedRevision: number) {
    super(`Revision ${requestedRevision} has been compacted; the oldest readable revision is ${compactedRevision}.`);
  }
}

/** A read named a revision the store has not reached yet (etcd: ErrFutureRev). */
export class FutureRevisionError extends Error {
  override readonly name = 'FutureRevisionError';
  readonly code = 'FUTURE_REVISION';
  constructor(readonly requestedRevision: number, readonly currentRevision: number) {
    super(`Revision ${requestedRevision} is newer than the store's current revision ${currentRevision}.`);
  }
}

/** A read named something that is not a revision at all. */
export class InvalidRevisionError extends Error {
  override readonly name = 'InvalidRevisionError';
  readonly code = 'INVALID_REVISION';
  constructor(readonly requestedRevision: unknown) {
    super(`The revision ${String(requestedRevision)} is not a positive integer.`);
  }
}

/** A snapshot stream that is malformed, truncated or fails its checksum; the old state is kept. */
export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
  readonly code = 'BAD_SNAPSHOT';
}

/** The on-disk engine is not one this code can read (wrong magic, newer format, broken meta). */
export class EngineFormatError extends Error {
  override readonly name = 'EngineFormatError';
  readonly code = 'BAD_ENGINE_FORMAT';
}

/** A broken invariant: a bug, never a normal path. The node must stop rather than carry on. */
export class KvInvariantError extends Error {
  override readonly name = 'KvInvariantError';
}

export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new KvInvariantError(typeof message === 'string' ? message : message());
}
