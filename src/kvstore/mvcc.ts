// etcd's multi-version key space on three lmdb databases:
//   live:      key -> (modRevision, createRevision, version) of every key that exists now;
//   history:   revision -> the change made at that revision (a put, or a tombstone for a delete);
//   revisions: key 0x00 revision -> (empty), the per-key revision index that answers
//              "what was this key at revision r" with one reverse seek.
// A put or a delete that removed something takes the next revision; a delete of a missing key
// changes nothing (etcd's rules). Callers run writes inside the engine's write transaction.

import type { Transaction } from 'lmdb';
import type { BinaryDb } from './engine.js';
import {
  decodeHistory, decodeLive, encodeHistoryPut, encodeHistoryTombstone, encodeLive, indexKey, indexKeyBelongsTo,
  indexKeyRevision, u64Key,
} from './encoding.js';
import { invariant } from './errors.js';

const EMPTY = Buffer.alloc(0);

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
  readonly revisions: BinaryDb;
}

/** Write a put at `revision` (the caller's next revision). */
export function putKey(dbs: KeySpaceDbs, keyBytes: Buffer, value: string, revision: number): PutOutcome {
  const current = dbs.live.getBinaryFast(keyBytes);
  // Decoded at once: getBinaryFast's buffer is reused by the next read.
  const live = current === undefined ? null : decodeLive(current);
  const createRevision = live === null ? revision : live.createRevision;
  const version = live === null ? 1 : live.version + 1;
  invariant(live === null || live.modRevision < revision, 'a put must take a revision above the key\'s last one');
  appendHistory(dbs.history, revision, encodeHistoryPut(keyBytes, value, createRevision, version, live === null ? 0 : live.modRevision));
  dbs.revisions.putSync(indexKey(keyBytes, revision), EMPTY);
  dbs.live.putSync(keyBytes, encodeLive({ modRevision: revision, createRevision, version }));
  return { createRevision, version };
}

/** Delete the key at `revision` if it exists; returns false (and writes nothing) if it does not. */
export function deleteKey(dbs: KeySpaceDbs, keyBytes: Buffer, revision: number): boolean {
  const current = dbs.live.getBinaryFast(keyBytes);
  if (current === undefined) return false;
  appendHistory(dbs.history, revision, encodeHistoryTombstone(keyBytes, decodeLive(current).modRevision));
  dbs.revisions.putSync(indexKey(keyBytes, revision), EMPTY);
  dbs.live.removeSync(keyBytes);
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

/** The key as it was at `revision` (the caller has checked the revision is readable), or null. */
export function readAt(dbs: KeySpaceDbs, key: string, revision: number, transaction?: Transaction): KeyValue | null {
  const keyBytes = Buffer.from(key, 'utf8');
  const options = transaction === undefined ? {} : { transaction };
  // Reverse seek from (key, revision) down to (key, 0): the first hit is the latest change <= revision.
  for (const { key: entryKey } of dbs.revisions.getRange({ ...options, start: indexKey(keyBytes, revision), end: indexKey(keyBytes, 0), reverse: true, limit: 1 })) {
    if (!indexKeyBelongsTo(entryKey, keyBytes)) return null;
    return readVersionAt(dbs, key, indexKeyRevision(entryKey), transaction === undefined ? undefined : { transaction });
  }
  return null;
}

function readVersionAt(dbs: KeySpaceDbs, key: string, modRevision: number, options: { transaction: Transaction } | undefined): KeyValue | null {
  const stored = dbs.history.get(u64Key(modRevision), options);
  invariant(stored !== undefined, () => `history lost revision ${modRevision} of a readable key`);
  const record = decodeHistory(stored);
  if (record.kind === 'tombstone') return null;
  return { key, value: record.value, createRevision: record.createRevision, modRevision, version: record.version };
}
