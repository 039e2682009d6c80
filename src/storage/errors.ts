// The errors storage reports upward. Each has a stable `code`, so callers (the runtime, the API's
// error catalogue, tests) can match on it rather than on the text. The split matters: a fatal error
// means the node must stop, a full disk means "not now", and a contract error is a caller's bug
// caught before anything reached the disk.

/** A failed fsync, corruption found on read, or any write error that leaves the files in doubt.
 * The page cache can no longer be trusted, so the node must stop; the message names the file and,
 * for corruption, the byte offset. */
export class StorageFatalError extends Error {
  override readonly name = 'StorageFatalError';
  readonly code = 'STORAGE_FATAL';
}

/** The disk is full (ENOSPC, or a quota: EDQUOT). Nothing of the failed call was kept: the files are
 * as they were before it, and the call may be retried once space returns. */
export class DiskFullError extends Error {
  override readonly name = 'DiskFullError';
  readonly code = 'DISK_FULL';
}

/** The caller asked for something the log cannot represent (a gap in the entries, a term that goes
 * back, a snapshot older than the one recorded). Rejected before any byte was written. */
export class StorageContractError extends Error {
  override readonly name = 'StorageContractError';
  readonly code = 'STORAGE_CONTRACT';
}

/** The data directory is held by another live process. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
  readonly code = 'DATA_DIR_LOCKED';
}

/** The `code` of a Node.js system error (ENOENT, ENOSPC...), if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Both mean "no room to write": a full file system, or a full quota. */
export function isDiskFull(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
