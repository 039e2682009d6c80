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
// tombstone). Steps handle whole records, so the state between steps still satisfies the rule for
// every record below the cursor. A removed tombstone takes the key's grave with it when the grave
// still names it (the key was not put again): reads then find no history for the key at all,
// which is what a read at or above the compacted revision must answer. A removed change takes its
// checkpoint entry (mvcc.ts) with it.

import type { BinaryDb } from './engine.js';
import { checkpointKey, decodeGrave, historyRecordLinks, readU64, u64Key } from './encoding.js';

export interface CompactionDbs {
  readonly history: BinaryDb;
  readonly graves: BinaryDb;
  readonly checkpoints: BinaryDb;
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
    const batch: { revision: number; keyBytes: Buffer; tombstone: boolean; previousRevision: number }[] = [];
    for (const { key, value } of dbs.history.getRange({ start: u64Key(next), end: u64Key(target + 1), limit })) {
      batch.push({ revision: readU64(key, 0), ...historyRecordLinks(value) });
    }
    for (const change of batch) {
      if (change.previousRevision > 0 && removeChange(dbs, change.keyBytes, change.previousRevision)) removed += 1;
      if (change.tombstone && removeTombstone(dbs, change.keyBytes, change.revision)) removed += 1;
      next = change.revision + 1;
    }
    visited += batch.length;
    if (batch.length < limit) next = target + 1;
  }
  return { cursor: next, recordsVisited: visited, recordsRemoved: removed };
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
