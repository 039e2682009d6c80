// Physical compaction of history, a bounded amount at a time.
//
// A `compact R` command takes effect at once, logically: the compacted revision becomes R and reads
// below it fail. The history it makes unreachable is then removed in steps of bounded size (at the
// end of each apply, or from runMaintenance), because one compaction of millions of revisions in a
// single transaction would stall the node's only thread. Leftovers are invisible: a read at r >= R
// finds the latest change <= r, which compaction never removes.
//
// etcd's rule for what survives `compact R`: per key, every change above R, plus the latest change
// <= R unless it is a tombstone. We get there by walking history upwards from the cursor to R. At
// each change (revision r, key K) the previous change of K is superseded for every read >= R, so
// it goes; and a tombstone at r <= R goes too, since "no entry" reads the same as "deleted".
//
// Why removing just the *previous* change is enough: by induction over the walk, every change of K
// below the one being looked at, except the latest, is already gone. Each history record names
// its key's previous change (previousRevision; a put that re-creates a deleted key names the
// tombstone). The cursor passes a window only when all of its removals are done, so every record
// below the cursor satisfies the rule. A removed tombstone takes the key's grave with it when the grave
// still names it (the key was not put again): reads then find no history for the key at all,
// which is what a read at or above the compacted revision must answer. A removed change takes its
// checkpoint entry (mvcc.ts) with it.
//
// In what order: the changes a window of the walk supersedes lie anywhere in the last tens of
// thousands of revisions, so removing each as the walk meets its successor touched a different
// history page for almost every removal, and under a steady write load the engine's commits
// flushed megabytes of such pages (bench/PERFORMANCE.md): the leader's WAL writes queued behind
// those flushes in the disk. So a window of up to WINDOW_REVISIONS revisions is walked first,
// reading only, and what it makes removable is then removed in revision order: consecutive
// removals fall on the same pages. The plan lives in memory; the persisted cursor moves to the
// window's end only when all of it is removed, so a restart walks the window again: removing what
// is already gone writes nothing, and a record of the window that is gone was removed after the
// change it superseded (revision order), so the second walk misses nothing it must remove.
//
// Revision order keeps the rule above at every step: a key's changes go oldest first (the one a
// change supersedes is below it, and a window's removals are sorted), so whatever is left of a
// key's history below the compacted revision is a suffix of it. A snapshot import relies on that:
// each record must link to its key's previous change in the stream, or to one that is gone.

import type { BinaryDb } from './engine.js';
import { checkpointKey, decodeGrave, historyRecordLinks, readU64, u64Key } from './encoding.js';
import { invariant } from './errors.js';

export interface CompactionDbs {
  readonly history: BinaryDb;
  readonly graves: BinaryDb;
  readonly checkpoints: BinaryDb;
}

/** History records read per cursor pass while walking a window. */
const BATCH_RECORDS = 256;
/**
 * Revisions walked before their removals start: the wider, the more removals share a page. A
 * window's plan holds about one removal per revision (a few MB at most).
 */
export const WINDOW_REVISIONS = 10_000;

export interface CompactionProgress {
  /** The next history revision to look at; equals target + 1 when the compaction is complete. */
  readonly cursor: number;
  /** Work done: records read while walking plus removals attempted. */
  readonly recordsVisited: number;
  readonly recordsRemoved: number;
}

interface Removal {
  readonly revision: number;
  readonly keyBytes: Buffer;
  readonly tombstone: boolean;
}

interface WindowPlan {
  /** The persisted cursor this plan starts at; the window is [start, end]. */
  readonly start: number;
  readonly end: number;
  /** The next revision of the window to read. */
  walkedTo: number;
  readonly removals: Removal[];
  sorted: boolean;
  /** The next removal to do. */
  done: number;
}

/**
 * Physical compaction with its plan for the current window. The plan is only valid for the engine
 * state it was made from: the owner calls forget() when a write transaction rolls back and makes a
 * new compactor when it opens another engine.
 */
export class HistoryCompactor {
  private plan: WindowPlan | null = null;

  constructor(private readonly windowRevisions: number = WINDOW_REVISIONS) {
    invariant(Number.isSafeInteger(windowRevisions) && windowRevisions >= 1, 'a compaction window holds at least one revision');
  }

  forget(): void {
    this.plan = null;
  }

  /**
   * Advance physical compaction from `cursor` (persisted) towards `target` (the compacted
   * revision) by at most `budget` units of work. Runs inside the caller's write transaction.
   */
  step(dbs: CompactionDbs, cursor: number, target: number, budget: number): CompactionProgress {
    if (cursor > target) return { cursor, recordsVisited: 0, recordsRemoved: 0 };
    if (this.plan === null || this.plan.start !== cursor) {
      this.plan = { start: cursor, end: Math.min(cursor + this.windowRevisions - 1, target), walkedTo: cursor, removals: [], sorted: false, done: 0 };
    }
    const plan = this.plan;
    invariant(plan.end <= target, 'a compaction window reaches past the compacted revision');
    let visited = walk(dbs, plan, budget);
    let removed = 0;
    if (plan.walkedTo > plan.end && !plan.sorted) {
      plan.removals.sort((a, b) => a.revision - b.revision);
      plan.sorted = true;
    }
    while (plan.sorted && plan.done < plan.removals.length && visited < budget) {
      const removal = plan.removals[plan.done++];
      visited += 1;
      if (removal.tombstone ? removeTombstone(dbs, removal.keyBytes, removal.revision) : removeChange(dbs, removal.keyBytes, removal.revision)) removed += 1;
    }
    if (!plan.sorted || plan.done < plan.removals.length) return { cursor, recordsVisited: visited, recordsRemoved: removed };
    this.plan = null;
    return { cursor: plan.end + 1, recordsVisited: visited, recordsRemoved: removed };
  }
}

/** Read the window's records up to the budget, noting what each makes removable. */
function walk(dbs: CompactionDbs, plan: WindowPlan, budget: number): number {
  let visited = 0;
  while (plan.walkedTo <= plan.end && visited < budget) {
    const limit = Math.min(BATCH_RECORDS, budget - visited);
    let read = 0;
    for (const { key, value } of dbs.history.getRange({ start: u64Key(plan.walkedTo), end: u64Key(plan.end + 1), limit })) {
      const revision = readU64(key, 0);
      const { keyBytes, tombstone, previousRevision } = historyRecordLinks(value);
      // A change supersedes its key's previous one; a tombstone at or below the target goes too.
      if (previousRevision > 0) plan.removals.push({ revision: previousRevision, keyBytes, tombstone: false });
      if (tombstone) plan.removals.push({ revision, keyBytes, tombstone: true });
      plan.walkedTo = revision + 1;
      read += 1;
    }
    visited += read;
    if (read < limit) plan.walkedTo = plan.end + 1;
  }
  return visited;
}

/** Remove one change and its checkpoint, if it has one; false if it was already gone. */
function removeChange(dbs: CompactionDbs, keyBytes: Buffer, revision: number): boolean {
  // Removing an entry that is not there reads the tree and writes nothing.
  dbs.checkpoints.removeSync(checkpointKey(keyBytes, revision));
  return dbs.history.removeSync(u64Key(revision));
}

/** Remove a tombstone, and the key's grave if it still names it; false if it was already gone. */
function removeTombstone(dbs: CompactionDbs, keyBytes: Buffer, revision: number): boolean {
  const grave = dbs.graves.getBinaryFast(keyBytes);
  if (grave !== undefined && decodeGrave(grave) === revision) dbs.graves.removeSync(keyBytes);
  return removeChange(dbs, keyBytes, revision);
}
