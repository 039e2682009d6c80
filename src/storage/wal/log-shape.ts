// The rules a sequence of records must follow, as one state machine used twice: by recovery, to
// replay what is on disk, and by the store, to check a batch before writing it (on a copy). Asserting
// the same rules on the way in and on the way out means a caller's bug is refused before it reaches the
// disk, and a file that breaks them was damaged or written by a broken build.
//
// It tracks the shape of the log, not the entries themselves: which indexes are held, in which segment
// each was written (so compaction knows what deleting a segment removes), the latest snapshot point and
// hard state.
//
//   held entries are exactly [firstIndex, nextIndex), contiguous
//   snapshot.index < nextIndex once a snapshot is recorded (truncation never goes below it)

import type { HardState, Index, SnapshotMeta, Term } from '../../raft/types.js';
import type { WalRecord } from './records.js';

/** A record breaks the log's rules. Recovery reports it as fatal; save() as a contract error. */
export class LogShapeError extends Error {
  override readonly name = 'LogShapeError';
}

/** A run of held entries written to one segment, from `firstIndex` up to the next run's start. */
interface Run {
  readonly firstIndex: Index;
  readonly segment: number;
  readonly term: Term;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, votedFor: 0, commitIndex: 0 };

export class LogShape {
  private runs: Run[] = [];
  private next: Index;
  private snapshotMeta: SnapshotMeta | null = null;
  private hard: HardState = EMPTY_HARD_STATE;
  private hardRecorded = false;

  /** `nextIndex`: the index the first entry appended must have (a segment header's first index). */
  constructor(nextIndex: Index) {
    this.next = nextIndex;
  }

  clone(): LogShape {
    const copy = new LogShape(this.next);
    copy.runs = this.runs.slice();
    copy.snapshotMeta = this.snapshotMeta;
    copy.hard = this.hard;
    copy.hardRecorded = this.hardRecorded;
    return copy;
  }

  get nextIndex(): Index { return this.next; }
  /** The first entry held; equals nextIndex when none is. */
  get firstIndex(): Index { return this.runs.length > 0 ? this.runs[0].firstIndex : this.next; }
  get lastIndex(): Index { return this.next - 1; }
  get snapshot(): SnapshotMeta | null { return this.snapshotMeta; }
  get hardState(): HardState { return this.hard; }
  get hasHardState(): boolean { return this.hardRecorded; }

  /** The term of a held entry, or undefined when the index is not held. */
  termAt(index: Index): Term | undefined {
    if (index < this.firstIndex || index >= this.next) return undefined;
    for (let k = this.runs.length - 1; k >= 0; k--) {
      if (this.runs[k].firstIndex <= index) return this.runs[k].term;
    }
    return undefined;
  }

  /** Applies one record written to `segment`, or throws LogShapeError without changing anything. */
  apply(record: WalRecord, segment: number): void {
    switch (record.type) {
      case 'entry': return this.appendEntry(record.entry.index, record.entry.term, segment);
      case 'truncate': return this.truncate(record.fromIndex);
      case 'snapshotMeta': return this.recordSnapshot(record.meta, record.replacesLog);
      case 'hardState': return this.recordHardState(record.hardState);
    }
  }

  /** The entry record's rule on its own: recovery's hot path calls it without building a record. */
  appendEntry(index: Index, term: Term, segment: number): void {
    if (index !== this.next) throw new LogShapeError(`entry ${index} does not follow entry ${this.next - 1}: entries must be contiguous`);
    const last = this.runs[this.runs.length - 1];
    if (last === undefined || last.segment !== segment || last.term !== term) this.runs.push({ firstIndex: index, segment, term });
    this.next = index + 1;
  }

  private truncate(fromIndex: Index): void {
    const snapshotIndex = this.snapshotMeta?.index ?? 0;
    if (fromIndex <= snapshotIndex) throw new LogShapeError(`truncating from ${fromIndex} would cut into the snapshot at ${snapshotIndex}`);
    if (fromIndex > this.next) throw new LogShapeError(`truncating from ${fromIndex}, past the end of the log (${this.next - 1})`);
    while (this.runs.length > 0 && this.runs[this.runs.length - 1].firstIndex >= fromIndex) this.runs.pop();
    this.next = fromIndex;
  }

  private recordSnapshot(meta: SnapshotMeta, replacesLog: boolean): void {
    const current = this.snapshotMeta;
    if (current !== null && meta.index < current.index) throw new LogShapeError(`snapshot at ${meta.index} is older than the one recorded at ${current.index}`);
    if (replacesLog) {
      this.runs = [];
      this.next = meta.index + 1;
    } else {
      // A compaction point is a snapshot of what this log holds: it cannot lie beyond its end, and
      // where the entry is still held, the terms must agree.
      if (meta.index > this.next - 1) throw new LogShapeError(`compaction point ${meta.index} is beyond the end of the log (${this.next - 1})`);
      const term = this.termAt(meta.index);
      if (term !== undefined && term !== meta.term) throw new LogShapeError(`compaction point ${meta.index} has term ${meta.term}, but the entry held there has term ${term}`);
    }
    this.snapshotMeta = meta;
  }

  private recordHardState(hardState: HardState): void {
    const current = this.hard;
    if (hardState.term < current.term) throw new LogShapeError(`hard state term ${hardState.term} goes back from ${current.term}`);
    // A vote, once cast and durable, is never changed within its term: that is what makes it a vote.
    if (hardState.term === current.term && current.votedFor !== 0 && hardState.votedFor !== current.votedFor) {
      throw new LogShapeError(`vote in term ${current.term} changes from ${current.votedFor} to ${hardState.votedFor}`);
    }
    this.hard = hardState;
    this.hardRecorded = true;
  }

  /** Segments below `sequence` were deleted: entries written to them are no longer held. */
  forgetSegmentsBelow(sequence: number): void {
    this.runs = this.runs.filter((run) => run.segment >= sequence);
  }
}
