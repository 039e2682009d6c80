// The replicated log as the core sees it: a suffix of entries kept in memory after a base point
// (the last compacted entry), with cursors for what is durable, committed and applied.
//
//   base.index <= applied <= applying <= committed <= lastIndex()
//   base.index <= stableIndex <= lastIndex()
//
// Entries in (stableIndex, lastIndex] are not yet durable: the runtime receives them in a Ready,
// writes and fsyncs them, and `advance()` moves stableIndex forward.

import { invariant } from './assert.js';
import type { Entry, Index, SnapshotMeta, Term } from './types.js';

/** Bytes an entry counts for when batching messages and bounding uncommitted proposals. */
export function entrySizeBytes(entry: Entry): number {
  const overheadBytes = 24;
  switch (entry.kind) {
    case 'command': return overheadBytes + entry.data.byteLength;
    case 'noop': return overheadBytes;
    case 'config': return overheadBytes + 64 * entry.membership.members.length;
  }
}

export class RaftLog {
  /** The entry just before the first one held: the snapshot or compaction point. */
  private baseIndex: Index;
  private baseTerm: Term;
  private held: Entry[];
  private stable: Index;
  committed: Index;
  /** Highest index the state machine has applied (confirmed by `advance()`). */
  applied: Index;
  /** Highest index handed to the runtime for applying, not yet confirmed. */
  applying: Index;

  constructor(snapshot: SnapshotMeta, entries: readonly Entry[], commitIndex: Index, appliedIndex: Index) {
    this.baseIndex = snapshot.index;
    this.baseTerm = snapshot.term;
    let kept = entries.filter((entry) => entry.index > snapshot.index);
    // A tail kept before the snapshot point lets slow followers catch up without a snapshot; its
    // first entry stands in as the base, since the term before it is not known.
    if (entries.length > 0 && entries[0].index <= snapshot.index) {
      const first = entries[0];
      this.baseIndex = first.index;
      this.baseTerm = first.term;
      kept = entries.slice(1);
    }
    this.held = kept;
    for (let i = 0; i < this.held.length; i++) {
      invariant(this.held[i].index === this.baseIndex + 1 + i, 'recovered log entries are not contiguous');
    }
    this.stable = this.lastIndex();
    this.committed = Math.max(commitIndex, snapshot.index);
    invariant(this.committed <= this.lastIndex(), () => `commit ${this.committed} beyond recovered log end ${this.lastIndex()}`);
    this.applied = Math.max(appliedIndex, snapshot.index);
    invariant(this.applied <= this.committed, 'applied beyond committed at start');
    this.applying = this.applied;
  }

  firstIndex(): Index { return this.baseIndex + 1; }
  lastIndex(): Index { return this.baseIndex + this.held.length; }
  lastTerm(): Term { return this.term(this.lastIndex()) as Term; }
  stableIndex(): Index { return this.stable; }

  /** The term of the entry at `index`, or undefined when it is compacted away or not yet there. */
  term(index: Index): Term | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    if (index < this.baseIndex || index > this.lastIndex()) return undefined;
    return this.held[index - this.baseIndex - 1].term;
  }

  entryAt(index: Index): Entry | undefined {
    if (index <= this.baseIndex || index > this.lastIndex()) return undefined;
    return this.held[index - this.baseIndex - 1];
  }

  matchTerm(index: Index, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft's election restriction (paper 5.4.1): is a log ending at (index, term) at least as new? */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const ourLastTerm = this.lastTerm();
    return lastTerm > ourLastTerm || (lastTerm === ourLastTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi], at most `maxBytes` (but always at least one) and `maxCount`. */
  slice(lo: Index, hi: Index, maxBytes = Infinity, maxCount = Infinity): Entry[] {
    invariant(lo > this.baseIndex, () => `slice from ${lo} reaches into the compacted log (base ${this.baseIndex})`);
    const end = Math.min(hi, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index <= end && out.length < maxCount; index++) {
      const entry = this.held[index - this.baseIndex - 1];
      bytes += entrySizeBytes(entry);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /** Leader append: entries must follow the last one directly. */
  append(entries: readonly Entry[]): void {
    for (const entry of entries) {
      invariant(entry.index === this.lastIndex() + 1, 'leader append is not contiguous');
      invariant(entry.term >= this.lastTerm(), 'leader append goes back in term');
      this.held.push(entry);
    }
  }

  /**
   * Follower append (paper Figure 2, AppendEntries receiver steps 2-4): if the log holds
   * prevLogIndex with prevLogTerm, delete any conflicting suffix and add what is new. Returns null
   * if the consistency check failed, else the last index now known to match the leader and the
   * index from which entries were written (0 when the log already held them all).
   */
  tryAppend(prevLogIndex: Index, prevLogTerm: Term, entries: readonly Entry[]): { matchIndex: Index; writtenFrom: Index } | null {
    if (prevLogIndex < this.baseIndex) {
      // The prefix up to base is committed and identical everywhere; skip what we compacted.
      const skip = this.baseIndex - prevLogIndex;
      if (skip >= entries.length) return { matchIndex: prevLogIndex + entries.length, writtenFrom: 0 };
      return this.tryAppend(this.baseIndex, entries[skip - 1].term, entries.slice(skip));
    }
    if (!this.matchTerm(prevLogIndex, prevLogTerm)) return null;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      invariant(conflict > this.committed, () => `conflict at ${conflict} would rewrite committed entry (commit ${this.committed})`);
      this.truncateAndAppend(entries.slice(conflict - entries[0].index));
    }
    return { matchIndex: prevLogIndex + entries.length, writtenFrom: conflict };
  }

  /** The first index where `entries` disagree with the log or run past its end; 0 if none. */
  private findConflict(entries: readonly Entry[]): Index {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  private truncateAndAppend(entries: readonly Entry[]): void {
    const from = entries[0].index;
    invariant(from > this.baseIndex && from <= this.lastIndex() + 1, 'truncation point outside the log');
    this.held.length = from - this.baseIndex - 1;
    if (this.stable >= from) this.stable = from - 1;
    for (const entry of entries) this.held.push(entry);
  }

  /** Hint for fast backtracking (thesis 5.3 and etcd's findConflictByTerm): the last index at or
   * before `index` whose term is at most `term`, so the leader can skip a whole term at once. */
  conflictHint(index: Index, term: Term): { index: Index; term: Term } {
    let probe = Math.min(index, this.lastIndex());
    while (probe > this.baseIndex) {
      const probeTerm = this.term(probe) as Term;
      if (probeTerm <= term) return { index: probe, term: probeTerm };
      probe--;
    }
    return { index: this.baseIndex, term: this.baseTerm };
  }

  commitTo(index: Index): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  unstableEntries(): Entry[] {
    return this.held.slice(this.stable - this.baseIndex);
  }

  /** After the runtime persisted entries up to (index, term): only valid if they still stand. */
  stableTo(index: Index, term: Term): void {
    if (index > this.stable && this.matchTerm(index, term)) this.stable = index;
  }

  /** Committed entries not yet handed out for applying, at most `maxBytes` (at least one). */
  nextCommitted(maxBytes: number): Entry[] {
    if (this.committed <= this.applying) return [];
    return this.slice(this.applying + 1, this.committed, maxBytes);
  }

  /** Entries up to `index` are no longer needed in memory: a snapshot covers them. */
  compactTo(index: Index): void {
    if (index <= this.baseIndex) return;
    invariant(index <= this.applied, () => `compacting to ${index} beyond applied ${this.applied}`);
    invariant(index <= this.stable, 'compacting entries that are not durable');
    const term = this.term(index) as Term;
    this.held = this.held.slice(index - this.baseIndex);
    this.baseIndex = index;
    this.baseTerm = term;
  }

  /** Replace the whole log with a snapshot received from the leader. */
  restore(snapshot: SnapshotMeta): void {
    invariant(snapshot.index > this.committed, 'restoring a snapshot older than the commit index');
    this.baseIndex = snapshot.index;
    this.baseTerm = snapshot.term;
    this.held = [];
    this.stable = snapshot.index;
    this.committed = snapshot.index;
    this.applied = snapshot.index;
    this.applying = snapshot.index;
  }

  /** Every config entry held in memory, oldest first. */
  configEntries(): Entry[] {
    return this.held.filter((entry) => entry.kind === 'config');
  }
}
