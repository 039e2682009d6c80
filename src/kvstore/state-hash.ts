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
import { decodeGrave, decodeHistory, decodeLive, HISTORY_PUT, historyValueBytes, u64Key, U64_BYTES, writeU64 } from './encoding.js';
import { changeAtOrBelow, getBinaryFastIn } from './mvcc.js';
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
    addKeyState(scratch, keyHeader, key, historyValueBytes(stored), record);
    if (++keysInStep === HASH_KEYS_PER_STEP) {
      keysInStep = 0;
      yield;
    }
  }
  scratch.flush();
  return digest.digest('hex');
}

/** One key's state: lengths first, so that no two different states feed the digest the same bytes. */
function addKeyState(scratch: Scratch, keyHeader: Buffer, key: Buffer, valueBytes: Buffer, state: { readonly createRevision: number; readonly modRevision: number; readonly version: number }): void {
  keyHeader.writeUInt32BE(key.length, 0);
  keyHeader.writeUInt32BE(valueBytes.length, 4);
  writeU64(keyHeader, 8, state.createRevision);
  writeU64(keyHeader, 16, state.modRevision);
  writeU64(keyHeader, 24, state.version);
  scratch.add(keyHeader);
  scratch.add(key);
  scratch.add(valueBytes);
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
  readonly live: BinaryDb;
  readonly history: BinaryDb;
  readonly graves: BinaryDb;
  readonly checkpoints: BinaryDb;
  /** The revision whose state is hashed; the caller checked compactedRevision <= it <= revision. */
  readonly atRevision: number;
  readonly compactedRevision: number;
  /** A pinned read view: the walk pauses between steps while applies go on. */
  readonly transaction?: Transaction;
}

/**
 * Walks every key with reachable history (the live keys and the graves, merged in key order): for
 * each, its latest change at or below `atRevision` decides what a read at that revision answers
 * (a put: the key with its value and metadata; a tombstone or nothing: absent). Yields every
 * HASH_KEYS_PER_STEP keys.
 */
export function* revisionHashSteps(input: RevisionHashInput): Generator<void, string, undefined> {
  const digest = createHash('sha256');
  const scratch = new Scratch(digest);
  scratch.add(REVISION_HASH_DOMAIN);
  scratch.add(u64Key(input.atRevision));
  const options = input.transaction === undefined ? {} : { transaction: input.transaction };
  const keyHeader = Buffer.allocUnsafe(KEY_HEADER_BYTES);
  const dbs = { live: input.live, history: input.history, graves: input.graves, checkpoints: input.checkpoints };
  let keysInStep = 0;
  for (const { key, head } of keysWithHistory(input.live.getRange(options), input.graves.getRange(options))) {
    const found = changeAtOrBelow(dbs, key, input.atRevision, input.compactedRevision, input.transaction, head);
    if (found !== null && found.record[0] === HISTORY_PUT) {
      const record = decodeHistory(found.record);
      if (record.kind !== 'put') throw new KvInvariantError('a put record decoded as a tombstone');
      addKeyState(scratch, keyHeader, key, historyValueBytes(found.record), { createRevision: record.createRevision, modRevision: found.revision, version: record.version });
    }
    if (++keysInStep === HASH_KEYS_PER_STEP) {
      keysInStep = 0;
      yield;
    }
  }
  scratch.flush();
  return digest.digest('hex');
}

interface RangeEntry {
  readonly key: Buffer;
  readonly value: Buffer;
}

/**
 * The keys of `live` and `graves` (never both: a put removes the grave, a delete the live entry)
 * in key order, each with its latest change. Keys are copied: range iterators reuse buffers.
 */
function* keysWithHistory(live: Iterable<RangeEntry>, graves: Iterable<RangeEntry>): Generator<{ readonly key: Buffer; readonly head: number }, void, undefined> {
  const liveEntries = live[Symbol.iterator]();
  const graveEntries = graves[Symbol.iterator]();
  let nextLive = liveEntries.next();
  let nextGrave = graveEntries.next();
  for (;;) {
    if (nextLive.done === true && nextGrave.done === true) return;
    const order = nextLive.done === true ? 1 : nextGrave.done === true ? -1 : Buffer.compare(nextLive.value.key, nextGrave.value.key);
    if (order === 0) throw new KvInvariantError('a key is both live and in a grave');
    if (order < 0 && nextLive.done !== true) {
      yield { key: Buffer.from(nextLive.value.key), head: decodeLive(nextLive.value.value).modRevision };
      nextLive = liveEntries.next();
    } else if (nextGrave.done !== true) {
      yield { key: Buffer.from(nextGrave.value.key), head: decodeGrave(nextGrave.value.value) };
      nextGrave = graveEntries.next();
    }
  }
}
