// Rebuilds a state machine environment from a snapshot stream. The target is a fresh environment in
// a temp directory; the caller swaps it in only if this resolves, so a stream that breaks off, is
// malformed or fails its checksum never touches the live state.
//
// Records are written as they arrive (one transaction per chunk), and the indexes the stream does
// not carry are rebuilt on the way: the per-key revision index and the live key set from history
// (which comes in ascending revision order), the expiry orders from the session records.

import { decodeValue } from '../codec/raft-codec.js';
import type { Engine } from './engine.js';
import {
  decodeHistory, encodeLive, historyRecordProblem, indexKey, orderKey, readU64, SESSION_RECORD_BYTES, U64_BYTES,
  decodeSession,
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
  // The index separates a key from its revision with 0x00, which valid keys never contain.
  if (record.keyBytes.length > MAX_KEY_BYTES || record.keyBytes.includes(0)) throw new SnapshotFormatError(`history revision ${revision} holds an invalid key`);
  const { history, revisions, live } = engine.dbs;
  // Revisions arrive ascending into an empty database: lmdb's append mode skips the search and
  // fills pages completely instead of splitting them in half.
  if (!(history.putSync(key, value, { append: true }) as unknown as boolean)) throw new SnapshotFormatError(`history revision ${revision} is not above the previous one`);
  revisions.putSync(indexKey(record.keyBytes, revision), EMPTY);
  // Ascending order: the last change of each key decides whether it is live.
  if (record.kind === 'put') live.putSync(record.keyBytes, encodeLive({ modRevision: revision, createRevision: record.createRevision, version: record.version }));
  else live.removeSync(record.keyBytes);
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
