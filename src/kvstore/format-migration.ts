// Engine format 1 -> 2, in place, when a node opens an engine written by an older build.
//
// Format 1 kept a per-key revision index (`revisions`: key 0x00 revision -> empty); format 2 walks
// previousRevision links instead and keeps a grave for each deleted key whose tombstone is still in
// history (mvcc.ts). Two things change on disk, both found through the old index, which lists each
// key's retained changes in ascending order:
//   - a put that re-created a deleted key linked to nothing; it now links to the tombstone before it;
//   - a key whose last retained change is a tombstone gets its grave;
//   - every tombstone and every 64th version gets its checkpoint entry.
// Then the old index is dropped and the schema record says 2. Everything happens in ONE write
// transaction, so a crash leaves either format 1 untouched (and the next open migrates again) or
// format 2 complete. The live table, history values and meta do not change: reads and replica hashes
// answer as before.

import type { Engine } from './engine.js';
import { checkpointKey, decodeHistory, encodeGrave, HISTORY_TOMBSTONE, isCheckpoint, historyPreviousRevision, historyRecordIsOfKey, readU64, U64_BYTES, u64Key, withPreviousRevision } from './encoding.js';
import { EngineFormatError } from './errors.js';
import { writeSchema } from './meta.js';

export interface MigrationReport {
  readonly keys: number;
  readonly relinkedPuts: number;
  readonly graves: number;
}

const EMPTY = Buffer.alloc(0);

/** Format 1's index key: the user key, 0x00, the revision as a big-endian u64. */
const LEGACY_INDEX_SEPARATOR = 0x00;

export function migrateFormat1To2(engine: Engine): MigrationReport {
  const revisions = engine.legacyDb('revisions');
  const { history, graves, checkpoints } = engine.dbs;
  let keys = 0;
  let relinkedPuts = 0;
  let graveCount = 0;
  engine.transact(() => {
    let groupKey: Buffer | null = null;
    let last: { readonly revision: number; readonly tombstone: boolean } | null = null;
    const finishGroup = (): void => {
      if (groupKey === null || last === null) return;
      keys += 1;
      if (last.tombstone) {
        graves.putSync(groupKey, encodeGrave(last.revision));
        graveCount += 1;
      }
    };
    for (const indexKey of revisions.getKeys()) {
      if (indexKey.length < 1 + 1 + U64_BYTES || indexKey[indexKey.length - 1 - U64_BYTES] !== LEGACY_INDEX_SEPARATOR) throw new EngineFormatError('a format-1 revision index entry is malformed');
      const keyBytes = indexKey.subarray(0, indexKey.length - 1 - U64_BYTES);
      const revision = readU64(indexKey, indexKey.length - U64_BYTES);
      if (groupKey === null || !keyBytes.equals(groupKey)) {
        finishGroup();
        groupKey = Buffer.from(keyBytes);
        last = null;
      }
      // A copy (get, not getBinaryFast): the record may be rewritten below.
      const record = history.get(u64Key(revision));
      if (record === undefined || !historyRecordIsOfKey(record, groupKey)) throw new EngineFormatError(`the format-1 revision index names revision ${revision}, which history does not hold for that key`);
      const tombstone = record[0] === HISTORY_TOMBSTONE;
      const decoded = decodeHistory(record);
      if (isCheckpoint(tombstone, decoded.kind === 'put' ? decoded.version : 0)) checkpoints.putSync(checkpointKey(groupKey, revision), EMPTY);
      if (!tombstone && last !== null && last.tombstone && historyPreviousRevision(record) === 0) {
        history.putSync(u64Key(revision), withPreviousRevision(record, last.revision));
        relinkedPuts += 1;
      }
      last = { revision, tombstone };
    }
    finishGroup();
    revisions.dropSync();
    writeSchema(engine.dbs.meta);
  });
  return { keys, relinkedPuts, graves: graveCount };
}
