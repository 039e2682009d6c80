// Rebuilds a state machine environment from a snapshot stream. The target is a fresh environment in
// a temp directory; the caller swaps it in only if this resolves, so a stream that breaks off, is
// malformed or fails its checksum never touches the live state.
//
// Records are written as they arrive (one transaction per chunk), and the indexes the stream does
// not carry are rebuilt on the way: the live key set, the graves of deleted keys and the checkpoints from history
// (which comes in ascending revision order), the expiry orders from the session records. Each
// history record's link to its key's previous change is checked (reads walk those links).

import { decodeValue } from '../codec/raft-codec.js';
import type { Engine } from './engine.js';
import {
  checkpointKey, decodeGrave, decodeHistory, decodeLive, encodeGrave, isCheckpoint, encodeLive, historyRecordProblem, orderKey, readU64, withPreviousRevision, SESSION_RECORD_BYTES, U64_BYTES,
  decodeSession, type HistoryRecord,
} from './encoding.js';
import { KvInvariantError, SnapshotFormatError } from './errors.js';
import { MAX_KEY_BYTES } from './limits.js';
import { writeMeta, writeSchema, type StateMeta } from './meta.js';
import { RECORD_HISTORY, RECORD_RESULT, RECORD_SESSION, SnapshotReader, type SnapshotItem } from './snapshot-format.js';

const EMPTY = Buffer.alloc(0);

/** What has been seen so far: records must come in the order the exporter writes them. */
interface ImportProgress {
  meta: StateMeta | null;
  lastHistoryRevision: number;
  lastType: number;
}

export async function buildFromSnapshot(engine: Engine, chunks: AsyncIterable<Uint8Array>): Promise<StateMeta> {
  const reader = new SnapshotReader();
  const progress: ImportProgress = { meta: null, lastHistoryRevision: 0, lastType: 0 };
  for await (const chunk of chunks) {
    if (!(chunk instanceof Uint8Array)) throw new SnapshotFormatError('a snapshot chunk is not binary');
    const items = reader.push(chunk);
    if (items.length > 0) engine.transact(() => { for (const item of items) writeCheckedItem(engine, progress, item); });
  }
  reader.end();
  const meta = progress.meta;
  if (meta === null) throw new SnapshotFormatError('the snapshot has no header');
  engine.transact(() => {
    writeSchema(engine.dbs.meta);
    writeMeta(engine.dbs.meta, meta);
  });
  return meta;
}

/** A broken invariant while decoding peer data means bad data, not a bug of ours. */
function writeCheckedItem(engine: Engine, progress: ImportProgress, item: SnapshotItem): void {
  try {
    writeItem(engine, progress, item);
  } catch (error) {
    if (error instanceof KvInvariantError) throw new SnapshotFormatError(`a snapshot record is malformed: ${error.message}`);
    throw error;
  }
}

function writeItem(engine: Engine, progress: ImportProgress, item: SnapshotItem): void {
  if (item.kind === 'header') {
    progress.meta = item.meta;
    return;
  }
  const meta = progress.meta;
  if (meta === null) throw new SnapshotFormatError('a snapshot record came before the header');
  if (item.type < progress.lastType) throw new SnapshotFormatError('snapshot records are out of order');
  progress.lastType = item.type;
  switch (item.type) {
    case RECORD_HISTORY: return writeHistory(engine, progress, meta, item.key, item.value);
    case RECORD_SESSION: return writeSession(engine, item.key, item.value);
    case RECORD_RESULT: return writeResult(engine, item.key, item.value);
  }
}

function writeHistory(engine: Engine, progress: ImportProgress, meta: StateMeta, key: Buffer, value: Buffer): void {
  if (key.length !== U64_BYTES) throw new SnapshotFormatError('a history record key is not a revision');
  const revision = readU64(key, 0);
  // Revision 1 is the empty store; every change has a revision above it, up to the store's own.
  if (revision <= progress.lastHistoryRevision || revision < 2 || revision > meta.revision) {
    throw new SnapshotFormatError(`history revision ${revision} is out of order or out of range`);
  }
  progress.lastHistoryRevision = revision;
  const problem = historyRecordProblem(value);
  if (problem !== null) throw new SnapshotFormatError(problem);
  const record = decodeHistory(value);
  // The same rule as for keys arriving from clients (limits.ts): no key a client could not write.
  if (record.keyBytes.length > MAX_KEY_BYTES || record.keyBytes.includes(0)) throw new SnapshotFormatError(`history revision ${revision} holds an invalid key`);
  const { history, graves, live } = engine.dbs;
  // Ascending order: the last change of each key decides whether it is live or in a grave.
  const current = live.getBinaryFast(record.keyBytes);
  const liveRevision = current === undefined ? 0 : decodeLive(current).modRevision;
  const grave = graves.getBinaryFast(record.keyBytes);
  const graveRevision = grave === undefined ? 0 : decodeGrave(grave);
  const linkProblem = previousLinkProblem(record, liveRevision, graveRevision, meta.compactedRevision);
  if (linkProblem !== null) throw new SnapshotFormatError(`history revision ${revision}: ${linkProblem}`);
  // A re-created key links to its tombstone (mvcc.ts). A sender built before graves existed
  // linked it to nothing, which would cut reads of the key's earlier life short here: mend it.
  const stored = record.kind === 'put' && record.previousRevision === 0 && graveRevision > 0 ? withPreviousRevision(value, graveRevision) : value;
  // Revisions arrive ascending into an empty database: lmdb's append mode skips the search and
  // fills pages completely instead of splitting them in half.
  if (!(history.putSync(key, stored, { append: true }) as unknown as boolean)) throw new SnapshotFormatError(`history revision ${revision} is not above the previous one`);
  if (isCheckpoint(record.kind === 'tombstone', record.kind === 'put' ? record.version : 0)) engine.dbs.checkpoints.putSync(checkpointKey(record.keyBytes, revision), EMPTY);
  if (record.kind === 'put') {
    if (graveRevision > 0) graves.removeSync(record.keyBytes);
    live.putSync(record.keyBytes, encodeLive({ modRevision: revision, createRevision: record.createRevision, version: record.version }));
  } else {
    live.removeSync(record.keyBytes);
    graves.putSync(record.keyBytes, encodeGrave(revision));
  }
}

/**
 * Reads walk previousRevision links (mvcc.ts), so a record must link to its key's change before it
 * in this stream, or, when the stream holds none, to a change compaction removed (at or below the
 * compacted revision) or to nothing. The one exception is mended by the caller: a re-creating put
 * from a sender built before graves existed links to nothing instead of to the tombstone.
 */
function previousLinkProblem(record: HistoryRecord, liveRevision: number, graveRevision: number, compactedRevision: number): string | null {
  const known = liveRevision > 0 ? liveRevision : record.kind === 'put' ? graveRevision : 0;
  if (record.kind === 'tombstone' && graveRevision > 0 && liveRevision === 0) return 'a tombstone of a key that is already deleted';
  if (known > 0) {
    if (record.previousRevision === known) return null;
    if (record.kind === 'put' && liveRevision === 0 && record.previousRevision === 0) return null;
    return `links to revision ${record.previousRevision}, but the key's change before it is ${known}`;
  }
  if (record.previousRevision > compactedRevision) return `links to revision ${record.previousRevision}, which the snapshot should hold and does not`;
  return null;
}

function writeSession(engine: Engine, key: Buffer, value: Buffer): void {
  if (key.length === 0 || key.length > 0xffff) throw new SnapshotFormatError('a session record has a bad client id');
  if (value.length !== SESSION_RECORD_BYTES) throw new SnapshotFormatError('a session record has the wrong size');
  let session;
  try {
    session = decodeSession(value);
  } catch (error) {
    throw new SnapshotFormatError(`a session record is malformed: ${(error as Error).message}`);
  }
  engine.dbs.sessions.putSync(key, value);
  engine.dbs.sessionsByIndex.putSync(orderKey(session.indexedIndex, key), EMPTY);
  engine.dbs.sessionsByTime.putSync(orderKey(session.indexedProposedAtMs, key), EMPTY);
}

function writeResult(engine: Engine, key: Buffer, value: Buffer): void {
  if (key.length < 2 + U64_BYTES || key.readUInt16BE(0) + 2 + U64_BYTES !== key.length) throw new SnapshotFormatError('a session result has a malformed key');
  let result: unknown;
  try {
    result = decodeValue(value);
  } catch {
    throw new SnapshotFormatError('a session result is not decodable');
  }
  if (typeof result !== 'object' || result === null || typeof (result as { kind?: unknown }).kind !== 'string') throw new SnapshotFormatError('a session result is not a command result');
  engine.dbs.results.putSync(key, value);
}
