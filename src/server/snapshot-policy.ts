// When the runtime records a snapshot point and compacts the log: every SNAPSHOT_EVERY_ENTRIES
// applied entries, or as soon as the write-ahead log has grown by more than SNAPSHOT_EVERY_BYTES
// since the last snapshot point. The byte trigger is what bounds the log when entries are large
// (10,000 entries of 1 MiB values would be 10 GB of log before the entry trigger fires).

export type SnapshotReason = 'entries' | 'bytes';

export interface SnapshotPolicyLimits {
  readonly snapshotEveryEntries: number;
  readonly snapshotEveryBytes: number;
}

export class SnapshotPolicy {
  /**
   * The log's size right after the last snapshot point (the tail it keeps for slow followers
   * included, so that a large tail cannot trigger a snapshot at every Ready). 0 at start: a node
   * that restarts with a large log records a snapshot point at its first chance, which is cheap.
   */
  private walBytesBaseline = 0;

  constructor(private readonly limits: SnapshotPolicyLimits) {
    if (!(limits.snapshotEveryEntries >= 1) || !(limits.snapshotEveryBytes >= 1)) throw new RangeError('snapshot limits must be at least 1');
  }

  /** Whether a snapshot point is due now; null when not, or when nothing new was applied. */
  due(appliedIndex: number, snapshotIndex: number, walBytes: number): SnapshotReason | null {
    // The log can shrink without us (a snapshot from the leader replaces it): follow it down.
    if (walBytes < this.walBytesBaseline) this.walBytesBaseline = walBytes;
    const entries = appliedIndex - snapshotIndex;
    if (entries <= 0) return null;
    if (entries >= this.limits.snapshotEveryEntries) return 'entries';
    if (walBytes - this.walBytesBaseline > this.limits.snapshotEveryBytes) return 'bytes';
    return null;
  }

  /** A snapshot point was recorded and the log compacted; it now holds `walBytes`. */
  recorded(walBytes: number): void {
    this.walBytesBaseline = walBytes;
  }

  get baselineBytes(): number {
    return this.walBytesBaseline;
  }
}
