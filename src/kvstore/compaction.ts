// Physical compaction of history, a bounded amount at a time.
//
// A `compact R` command takes effect at once, logically: the compacted revision becomes R and reads
// below it fail. The history it makes unreachable is then removed in steps of bounded size (at the
// end of each apply, or from runMaintenance), because one compaction of millions of revisions in a
// single transaction would stall the node's only thread. Leftovers are invisible: a read at r >= R
// finds the latest change <= r, which compaction never removes.
//
// etcd's rule for what survives `compact R`: per key, every change above R, plus the latest change
// <= R unless it is a tombstone. We get there by walking history upwards from the cursor to R: at
// each change (revision r, key K) every older change of K is superseded for all reads >= R, so it
// goes; and a tombstone at r <= R goes too, since "no entry" reads the same as "deleted". Each step
// handles whole history records, so the state between steps still satisfies the rule for every
// record below the cursor.

import type { BinaryDb } from './engine.js';
import { historyRecordKey, indexKey, indexKeyRevision, readU64, u64Key } from './encoding.js';

export interface CompactionDbs {
  readonly history: BinaryDb;
  readonly revisions: BinaryDb;
}

/** History records looked at per batch; each batch is read out before anything is deleted. */
const BATCH_RECORDS = 256;

export interface CompactionProgress {
  /** The next history revision to look at; equals target + 1 when the compaction is complete. */
  readonly cursor: number;
  readonly recordsVisited: number;
  readonly recordsRemoved: number;
}

/**
 * Advance physical compaction from `cursor` towards `target` (the compacted revision), visiting at
 * most `budgetRecords` history records. Runs inside the caller's write transaction.
 */
export function compactStep(dbs: CompactionDbs, cursor: number, target: number, budgetRecords: number): CompactionProgress {
  let visited = 0;
  let removed = 0;
  let next = cursor;
  while (next <= target && visited < budgetRecords) {
    const limit = Math.min(BATCH_RECORDS, budgetRecords - visited);
    // Read the batch out first: deleting under an open cursor of the same database is not safe.
    const batch: { revision: number; keyBytes: Buffer; tombstone: boolean }[] = [];
    for (const { key, value } of dbs.history.getRange({ start: u64Key(next), end: u64Key(target + 1), limit })) {
      batch.push({ revision: readU64(key, 0), ...historyRecordKey(value) });
    }
    if (batch.length === 0) {
      next = target + 1;
      break;
    }
    for (const change of batch) {
      removed += removeOlderChanges(dbs, change.keyBytes, change.revision);
      if (change.tombstone) {
        dbs.history.removeSync(u64Key(change.revision));
        dbs.revisions.removeSync(indexKey(change.keyBytes, change.revision));
        removed += 1;
      }
      next = change.revision + 1;
    }
    visited += batch.length;
    if (batch.length < limit) next = target + 1;
  }
  return { cursor: next, recordsVisited: visited, recordsRemoved: removed };
}

/** Remove every change of the key below `revision` from history and the index. */
function removeOlderChanges(dbs: CompactionDbs, keyBytes: Buffer, revision: number): number {
  const older: Buffer[] = [];
  for (const key of dbs.revisions.getKeys({ start: indexKey(keyBytes, 0), end: indexKey(keyBytes, revision) })) older.push(Buffer.from(key));
  for (const key of older) {
    dbs.history.removeSync(u64Key(indexKeyRevision(key)));
    dbs.revisions.removeSync(key);
  }
  return older.length;
}
