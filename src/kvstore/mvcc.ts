// etcd's multi-version key space on three lmdb databases:
//   live:    key -> (modRevision, createRevision, version) of every key that exists now;
//   history: revision -> the change made at that revision (a put, or a tombstone for a delete),
//            each linked to the key's change before it (previousRevision);
//   graves:  key -> revision of the tombstone, for every deleted key whose tombstone is still in
//            history (encoding.ts);
//   checkpoints: key 0x00 revision -> (empty) for every tombstone and every 64th version of a key,
//            a sparse index where a walk into the past can start (encoding.ts).
// A put or a delete that removed something takes the next revision; a delete of a missing key
// changes nothing (etcd's rules). Callers run writes inside the engine's write transaction.
//
// "What was this key at revision r" walks the links down to the first change <= r, starting from
// the key's first checkpoint above r, or from its latest change (in `live`, or its grave) when it
// has none: at most CHECKPOINT_EVERY_VERSIONS lookups in history. There is no full per-key revision
// index: it was a B-tree keyed by user key that every put inserted into and every compaction
// deleted from, so each engine batch rewrote most of its pages (half the pages of a batch commit,
// and twice its time, with 100,000 retained revisions: bench/PERFORMANCE.md). Checkpoints take one
// insert per 64 puts (and one per delete).

import type { Transaction } from 'lmdb';
import type { BinaryDb } from './engine.js';
import {
  CHECKPOINT_EVERY_VERSIONS, checkpointKey, checkpointRevisionOf, decodeGrave, decodeHistory, decodeLive, encodeGrave,
  encodeHistoryPut, encodeHistoryTombstone, encodeLive, historyPreviousRevision, historyRecordIsOfKey, isCheckpoint, u64Key,
} from './encoding.js';
import { invariant } from './errors.js';

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export interface PutOutcome {
  readonly createRevision: number;
  readonly version: number;
}

export interface KeySpaceDbs {
  readonly live: BinaryDb;
  readonly history: BinaryDb;
  readonly graves: BinaryDb;
  readonly checkpoints: BinaryDb;
}

const EMPTY = Buffer.alloc(0);

/** Write a put at `revision` (the caller's next revision). */
export function putKey(dbs: KeySpaceDbs, keyBytes: Buffer, value: string, revision: number): PutOutcome {
  const current = dbs.live.getBinaryFast(keyBytes);
  // Decoded at once: getBinaryFast's buffer is reused by the next read.
  const live = current === undefined ? null : decodeLive(current);
  let previousRevision: number;
  if (live !== null) {
    previousRevision = live.modRevision;
  } else {
    // A re-created key links to its tombstone, so that walks from here reach its earlier life.
    const grave = dbs.graves.getBinaryFast(keyBytes);
    previousRevision = grave === undefined ? 0 : decodeGrave(grave);
    if (grave !== undefined) dbs.graves.removeSync(keyBytes);
  }
  const createRevision = live === null ? revision : live.createRevision;
  const version = live === null ? 1 : live.version + 1;
  invariant(previousRevision < revision, 'a put must take a revision above the key\'s last one');
  appendHistory(dbs.history, revision, encodeHistoryPut(keyBytes, value, createRevision, version, previousRevision));
  if (isCheckpoint(false, version)) dbs.checkpoints.putSync(checkpointKey(keyBytes, revision), EMPTY);
  dbs.live.putSync(keyBytes, encodeLive({ modRevision: revision, createRevision, version }));
  return { createRevision, version };
}

/** Delete the key at `revision` if it exists; returns false (and writes nothing) if it does not. */
export function deleteKey(dbs: KeySpaceDbs, keyBytes: Buffer, revision: number): boolean {
  const current = dbs.live.getBinaryFast(keyBytes);
  if (current === undefined) return false;
  const modRevision = decodeLive(current).modRevision;
  invariant(modRevision < revision, 'a delete must take a revision above the key\'s last one');
  appendHistory(dbs.history, revision, encodeHistoryTombstone(keyBytes, modRevision));
  dbs.checkpoints.putSync(checkpointKey(keyBytes, revision), EMPTY);
  dbs.live.removeSync(keyBytes);
  dbs.graves.putSync(keyBytes, encodeGrave(revision));
  return true;
}

/**
 * Each change takes a revision above every stored one, so history only ever grows at its end:
 * lmdb's append mode skips the search and fills pages instead of splitting them in half.
 */
function appendHistory(history: BinaryDb, revision: number, record: Buffer): void {
  // lmdb-js returns false (its typings say void) when an append would not be at the end.
  const appended = history.putSync(u64Key(revision), record, { append: true }) as unknown as boolean;
  invariant(appended, 'history must grow at its end');
}

/** The key as it is now, or null. */
export function readLatest(dbs: KeySpaceDbs, key: string, transaction?: Transaction): KeyValue | null {
  const keyBytes = Buffer.from(key, 'utf8');
  const options = transaction === undefined ? undefined : { transaction };
  const current = dbs.live.get(keyBytes, options);
  if (current === undefined) return null;
  const live = decodeLive(current);
  return readVersionAt(dbs, key, live.modRevision, options);
}

/**
 * The key as it was at `revision`, or null. The caller has checked that `revision` is readable
 * (compactedRevision <= revision <= the store's revision) and passes the compacted revision, which
 * the walk's checks need.
 */
export function readAt(dbs: KeySpaceDbs, key: string, revision: number, compactedRevision: number, transaction?: Transaction): KeyValue | null {
  const keyBytes = Buffer.from(key, 'utf8');
  const stored = changeAtOrBelow(dbs, keyBytes, revision, compactedRevision, transaction);
  if (stored === null) return null;
  const record = decodeHistory(stored.record);
  if (record.kind === 'tombstone') return null;
  return { key, value: record.value, createRevision: record.createRevision, modRevision: stored.revision, version: record.version };
}

/** The latest change of a key, as `live` or its grave names it; 0 when it has no reachable history. */
export function latestChange(dbs: KeySpaceDbs, keyBytes: Buffer, transaction?: Transaction): number {
  const live = getBinaryFastIn(dbs.live, keyBytes, transaction);
  if (live !== undefined) return decodeLive(live).modRevision;
  const grave = getBinaryFastIn(dbs.graves, keyBytes, transaction);
  return grave === undefined ? 0 : decodeGrave(grave);
}

/** The key's first checkpoint above `revision`, or null. */
function checkpointAbove(dbs: KeySpaceDbs, keyBytes: Buffer, revision: number, transaction: Transaction | undefined): number | null {
  const options = transaction === undefined ? {} : { transaction };
  for (const entryKey of dbs.checkpoints.getKeys({ ...options, start: checkpointKey(keyBytes, revision + 1), limit: 1 })) {
    return checkpointRevisionOf(entryKey, keyBytes);
  }
  return null;
}

/**
 * Steps down from the latest change before a walk looks for a checkpoint to jump to: most reads
 * (and every replica hash, at a recent revision) end within them, and a range seek costs more
 * than a few lookups.
 */
export const STEPS_BEFORE_CHECKPOINT_SEEK = 8;

/**
 * The key's latest change at or below `revision` (a put or a tombstone), or null when it has none
 * that a read at `revision` can see. The record is lmdb's reused buffer: decode it before the next
 * read. Walks down the previousRevision links from the key's latest change (`latest`, when the
 * caller knows it, saves a lookup); after STEPS_BEFORE_CHECKPOINT_SEEK steps it jumps to the
 * key's first checkpoint above `revision`, from where at most CHECKPOINT_EVERY_VERSIONS steps
 * remain (encoding.ts).
 */
export function changeAtOrBelow(
  dbs: KeySpaceDbs, keyBytes: Buffer, revision: number, compactedRevision: number, transaction?: Transaction, latest?: number,
): { readonly revision: number; readonly record: Buffer } | null {
  let at = latest ?? latestChange(dbs, keyBytes, transaction);
  let steps = 0;
  let sought = false;
  while (at > 0) {
    if (!sought && steps === STEPS_BEFORE_CHECKPOINT_SEEK && at > revision) {
      sought = true;
      steps = 0;
      const checkpoint = checkpointAbove(dbs, keyBytes, revision, transaction);
      if (checkpoint !== null && checkpoint < at) at = checkpoint;
    }
    steps += 1;
    invariant(sought ? steps <= CHECKPOINT_EVERY_VERSIONS + 1 : steps <= STEPS_BEFORE_CHECKPOINT_SEEK + 1, () => `a walk down the changes of a key took more than ${CHECKPOINT_EVERY_VERSIONS + 1} steps after its checkpoint seek: a checkpoint is missing`);
    const record = getBinaryFastIn(dbs.history, u64Key(at), transaction);
    if (record === undefined) {
      // Compaction removes a change above a readable revision never, and below it only when a
      // later change <= the compacted revision superseded it, or when it is a tombstone. A walk
      // that came down from a change above `revision` can only be missing the latter: the key
      // was deleted then, which reads the same as "no entry".
      invariant(at <= compactedRevision && at <= revision, () => `history lost revision ${at}, which a read at ${revision} needs (compacted to ${compactedRevision})`);
      return null;
    }
    invariant(historyRecordIsOfKey(record, keyBytes), () => `history revision ${at} belongs to another key than the one whose changes link to it`);
    if (at <= revision) return { revision: at, record };
    const previous = historyPreviousRevision(record);
    invariant(previous < at, () => `history revision ${at} links to ${previous}, not to an earlier change`);
    at = previous;
  }
  return null;
}

function readVersionAt(dbs: KeySpaceDbs, key: string, modRevision: number, options: { transaction: Transaction } | undefined): KeyValue | null {
  const stored = dbs.history.get(u64Key(modRevision), options);
  invariant(stored !== undefined, () => `history lost revision ${modRevision} of a live key`);
  const record = decodeHistory(stored);
  invariant(record.kind === 'put', () => `the live key's revision ${modRevision} is not a put`);
  return { key, value: record.value, createRevision: record.createRevision, modRevision, version: record.version };
}

/** lmdb-js's getBinaryFast takes read options too; its typings omit them. */
export function getBinaryFastIn(db: BinaryDb, key: Buffer, transaction: Transaction | undefined): Buffer | undefined {
  if (transaction === undefined) return db.getBinaryFast(key);
  return (db.getBinaryFast as (this: BinaryDb, id: Buffer, options: { transaction: Transaction }) => Buffer | undefined).call(db, key, { transaction });
}
