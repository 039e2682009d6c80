// A deterministic digest of the live key space, so replicas can compare their states at the same
// applied index. It covers what clients can observe now (every live key with its value, revisions
// and version, in key order) plus the store revision and the compacted revision; it does not cover
// history that compaction has yet to remove physically, nor the engine's page layout, which may
// differ between replicas.
//
// The walk is a generator that pauses every HASH_KEYS_PER_STEP keys: hash() runs it to the end in
// one go, hashAsync() gives the event loop a turn at each pause (a million keys take seconds).

import { createHash, type Hash } from 'node:crypto';
import type { Transaction } from 'lmdb';
import type { BinaryDb } from './engine.js';
import { decodeHistory, decodeLive, HISTORY_PUT, historyValueBytes, indexKeyRevision, u64Key, U64_BYTES, writeU64 } from './encoding.js';
import { KvInvariantError } from './errors.js';

export const HASH_KEYS_PER_STEP = 4096;

const HASH_DOMAIN = Buffer.from('raft-kv live-state hash v1\n', 'utf8');
/** Small inputs are gathered here and fed to the digest together: far fewer native calls. */
const SCRATCH_BYTES = 64 * 1024;
const KEY_HEADER_BYTES = 4 + 4 + 3 * U64_BYTES;

export interface HashInput {
  readonly live: BinaryDb;
  readonly history: BinaryDb;
  readonly revision: number;
  readonly compactedRevision: number;
  /** A pinned read view; without one, the walk must not be paused across commits. */
  readonly transaction?: Transaction;
}

/** Yields between steps of HASH_KEYS_PER_STEP keys; returns the hex digest. */
export function* hashSteps(input: HashInput): Generator<void, string, undefined> {
  const digest = createHash('sha256');
  const scratch = new Scratch(digest);
  const head = Buffer.allocUnsafe(2 * U64_BYTES);
  writeU64(head, 0, input.revision);
  writeU64(head, 8, input.compactedRevision);
  scratch.add(HASH_DOMAIN);
  scratch.add(head);
  const options = input.transaction === undefined ? {} : { transaction: input.transaction };
  const keyHeader = Buffer.allocUnsafe(KEY_HEADER_BYTES);
  let keysInStep = 0;
  for (const { key, value } of input.live.getRange(options)) {
    const record = decodeLive(value);
    const stored = getBinaryFastIn(input.history, u64Key(record.modRevision), input.transaction);
    if (stored === undefined || stored[0] !== HISTORY_PUT) throw new KvInvariantError(`the live key's revision ${record.modRevision} has no put in history`);
    const valueBytes = historyValueBytes(stored);
    // Lengths first, so that no two different states can feed the digest the same bytes.
    keyHeader.writeUInt32BE(key.length, 0);
    keyHeader.writeUInt32BE(valueBytes.length, 4);
    writeU64(keyHeader, 8, record.createRevision);
    writeU64(keyHeader, 16, record.modRevision);
    writeU64(keyHeader, 24, record.version);
    scratch.add(keyHeader);
    scratch.add(key);
    scratch.add(valueBytes);
    if (++keysInStep === HASH_KEYS_PER_STEP) {
      keysInStep = 0;
      yield;
    }
  }
  scratch.flush();
  return digest.digest('hex');
}

/** lmdb-js's getBinaryFast takes read options too; its typings omit them. */
function getBinaryFastIn(db: BinaryDb, key: Buffer, transaction: Transaction | undefined): Buffer | undefined {
  if (transaction === undefined) return db.getBinaryFast(key);
  return (db.getBinaryFast as (this: BinaryDb, id: Buffer, options: { transaction: Transaction }) => Buffer | undefined).call(db, key, { transaction });
}

class Scratch {
  private readonly buffer = Buffer.allocUnsafe(SCRATCH_BYTES);
  private used = 0;

  constructor(private readonly digest: Hash) {}

  add(bytes: Uint8Array): void {
    if (this.used + bytes.length > this.buffer.length) this.flush();
    if (bytes.length > this.buffer.length) {
      this.digest.update(bytes);
      return;
    }
    this.buffer.set(bytes, this.used);
    this.used += bytes.length;
  }

  flush(): void {
    if (this.used === 0) return;
    this.digest.update(this.buffer.subarray(0, this.used));
    this.used = 0;
  }
}

// ---- The state at a past revision, for replica checkpoints -------------------------------------
//
// Replicas apply in batches of different sizes, so two of them are rarely at the same applied
// index at the same moment. The state *at a revision* is different: it is fixed by the log alone
// (etcd's HashKV works the same way), so every replica can hash revision R whenever it has applied
// past R, as long as its compacted revision is still <= R. Physical compaction never changes what
// a read at R >= the compacted revision answers (compaction.ts), so a half-finished compaction
// does not change this hash either.

const REVISION_HASH_DOMAIN = Buffer.from('raft-kv state-at-revision hash v1\n', 'utf8');

export interface RevisionHashInput {
  readonly revisions: BinaryDb;
  readonly history: BinaryDb;
  /** The revision whose state is hashed; the caller checked compactedRevision <= it <= revision. */
  readonly atRevision: number;
  /** A pinned read view: the walk pauses between steps while applies go on. */
  readonly transaction?: Transaction;
}

/**
 * Walks the per-key revision index in key order: for each key, its latest change at or below
 * `atRevision` decides what a read at that revision answers (a put: the key with its value and
 * metadata; a tombstone or nothing: absent). Yields every HASH_KEYS_PER_STEP index entries.
 */
export function* revisionHashSteps(input: RevisionHashInput): Generator<void, string, undefined> {
  const digest = createHash('sha256');
  const scratch = new Scratch(digest);
  scratch.add(REVISION_HASH_DOMAIN);
  scratch.add(u64Key(input.atRevision));
  const options = input.transaction === undefined ? {} : { transaction: input.transaction };
  const keyHeader = Buffer.allocUnsafe(KEY_HEADER_BYTES);
  let groupKey: Buffer | null = null;
  let groupRevision = 0;
  let entriesInStep = 0;
  const emit = (): void => {
    if (groupKey === null || groupRevision === 0) return;
    const stored = getBinaryFastIn(input.history, u64Key(groupRevision), input.transaction);
    if (stored === undefined) throw new KvInvariantError(`the revision index names ${groupRevision}, which history does not hold`);
    const record = decodeHistory(stored);
    if (record.kind === 'tombstone') return;
    if (!record.keyBytes.equals(groupKey)) throw new KvInvariantError(`history revision ${groupRevision} belongs to another key than its index entry`);
    const valueBytes = historyValueBytes(stored);
    keyHeader.writeUInt32BE(groupKey.length, 0);
    keyHeader.writeUInt32BE(valueBytes.length, 4);
    writeU64(keyHeader, 8, record.createRevision);
    writeU64(keyHeader, 16, groupRevision);
    writeU64(keyHeader, 24, record.version);
    scratch.add(keyHeader);
    scratch.add(groupKey);
    scratch.add(valueBytes);
  };
  for (const key of input.revisions.getKeys(options)) {
    const keyBytes = key.subarray(0, key.length - 1 - U64_BYTES);
    const revision = indexKeyRevision(key);
    if (groupKey === null || !keyBytes.equals(groupKey)) {
      emit();
      // Copied: the range iterator may reuse its key buffer.
      groupKey = Buffer.from(keyBytes);
      groupRevision = 0;
    }
    // A key's revisions come in ascending order: the last one <= atRevision wins.
    if (revision <= input.atRevision) groupRevision = revision;
    if (++entriesInStep === HASH_KEYS_PER_STEP) {
      entriesInStep = 0;
      yield;
    }
  }
  emit();
  scratch.flush();
  return digest.digest('hex');
}
