// Byte layouts of the engine's keys and values. Keys are built by hand so that lmdb's byte order is
// the order we mean: revisions are 8-byte big-endian integers, so numeric order is byte order, and
// a user key's UTF-8 bytes sort the way etcd sorts keys. Values are fixed layouts where they are hot
// (every put touches them) and MessagePack where they are not.

import { invariant, KvInvariantError } from './errors.js';

const TWO_32 = 0x1_0000_0000;

export const U64_BYTES = 8;

/** Write a non-negative safe integer as 8 bytes, big-endian. */
export function writeU64(target: Buffer, offset: number, value: number): void {
  // A plain check, not invariant(): this runs several times per put and must not allocate.
  if (!(value >= 0 && Number.isSafeInteger(value))) throw new KvInvariantError(`not a u64-safe integer: ${value}`);
  target.writeUInt32BE(Math.floor(value / TWO_32), offset);
  target.writeUInt32BE(value % TWO_32, offset + 4);
}

export function readU64(source: Buffer, offset: number): number {
  const high = source.readUInt32BE(offset);
  if (high >= 0x20_0000) throw new KvInvariantError(`stored integer beyond 2^53 at offset ${offset}`);
  return high * TWO_32 + source.readUInt32BE(offset + 4);
}

export function u64Key(value: number): Buffer {
  const key = Buffer.allocUnsafe(U64_BYTES);
  writeU64(key, 0, value);
  return key;
}

// ---- Graves: <key bytes> -> revision u64 of the tombstone that deleted it ----------------------
// A deleted key leaves `live`, so without this table its history would be unreachable by key: a
// read at a past revision starts its walk down the key's changes (previousRevision links) from
// `live` for a key that exists and from its grave for one that does not. A grave goes when the key
// is put again (the new put links to the tombstone) or when compaction removes the tombstone.

export function encodeGrave(tombstoneRevision: number): Buffer {
  return u64Key(tombstoneRevision);
}

export function decodeGrave(value: Buffer): number {
  invariant(value.length === U64_BYTES, () => `grave record of ${value.length} bytes`);
  return readU64(value, 0);
}

// ---- Checkpoints: <key bytes> 0x00 <revision u64> -> (empty) ------------------------------------
// A sparse per-key index of changes, so a read far in the past does not walk every change of a hot
// key: every tombstone and every put whose version is a multiple of CHECKPOINT_EVERY_VERSIONS has
// an entry, so at most CHECKPOINT_EVERY_VERSIONS - 1 changes of a key lie between two entries (a
// tombstone restarts the versions). Keys never contain U+0000 (limits.ts refuses control
// characters), and 0x00 sorts below every other byte, so one key's entries are contiguous and
// ascending, and "a" sorts before "ab".

export const CHECKPOINT_EVERY_VERSIONS = 64;
const CHECKPOINT_SEPARATOR = 0x00;

export function isCheckpoint(tombstone: boolean, version: number): boolean {
  return tombstone || version % CHECKPOINT_EVERY_VERSIONS === 0;
}

export function checkpointKey(keyBytes: Buffer, revision: number): Buffer {
  const key = Buffer.allocUnsafe(keyBytes.length + 1 + U64_BYTES);
  keyBytes.copy(key, 0);
  key[keyBytes.length] = CHECKPOINT_SEPARATOR;
  writeU64(key, keyBytes.length + 1, revision);
  return key;
}

/** The revision of a checkpoint entry of `keyBytes`, or null when the entry is another key's. */
export function checkpointRevisionOf(entryKey: Buffer, keyBytes: Buffer): number | null {
  if (entryKey.length !== keyBytes.length + 1 + U64_BYTES || entryKey[keyBytes.length] !== CHECKPOINT_SEPARATOR) return null;
  if (entryKey.compare(keyBytes, 0, keyBytes.length, 0, keyBytes.length) !== 0) return null;
  return readU64(entryKey, keyBytes.length + 1);
}

// ---- Live keys: <key bytes> -> modRevision | createRevision | version --------------------------

export interface LiveRecord {
  readonly modRevision: number;
  readonly createRevision: number;
  readonly version: number;
}

export const LIVE_RECORD_BYTES = 3 * U64_BYTES;

export function encodeLive(record: LiveRecord): Buffer {
  const value = Buffer.allocUnsafe(LIVE_RECORD_BYTES);
  writeU64(value, 0, record.modRevision);
  writeU64(value, 8, record.createRevision);
  writeU64(value, 16, record.version);
  return value;
}

export function decodeLive(value: Buffer): LiveRecord {
  invariant(value.length === LIVE_RECORD_BYTES, () => `live record of ${value.length} bytes`);
  return { modRevision: readU64(value, 0), createRevision: readU64(value, 8), version: readU64(value, 16) };
}

// ---- History: <revision u64> -> change record ------------------------------------------------
//   kind u8 | createRevision u64 | version u64 | previousRevision u64 | keyLength u32 | key | value
// Each change is stored whole under its revision, the key included, so compaction and snapshots
// walk history in revision order without a second lookup. previousRevision is the key's change
// just before this one (0 for a put that creates a key with no history; a put that re-creates a
// deleted key names the tombstone): reads at past revisions walk these links down from the key's
// latest change, and compaction follows them to find what a change superseded.

export const HISTORY_PUT = 1;
export const HISTORY_TOMBSTONE = 2;
const OFFSET_CREATE = 1;
const OFFSET_VERSION = 9;
const OFFSET_PREVIOUS = 17;
const OFFSET_KEY_LENGTH = 25;
export const HISTORY_HEADER_BYTES = 29;

export type HistoryRecord =
  | { readonly kind: 'put'; readonly keyBytes: Buffer; readonly createRevision: number; readonly version: number; readonly previousRevision: number; readonly value: string }
  | { readonly kind: 'tombstone'; readonly keyBytes: Buffer; readonly previousRevision: number };

export function encodeHistoryPut(keyBytes: Buffer, value: string, createRevision: number, version: number, previousRevision: number): Buffer {
  const valueBytes = Buffer.byteLength(value, 'utf8');
  const record = historyHeader(HISTORY_PUT, keyBytes, valueBytes, createRevision, version, previousRevision);
  record.write(value, HISTORY_HEADER_BYTES + keyBytes.length, valueBytes, 'utf8');
  return record;
}

export function encodeHistoryTombstone(keyBytes: Buffer, previousRevision: number): Buffer {
  return historyHeader(HISTORY_TOMBSTONE, keyBytes, 0, 0, 0, previousRevision);
}

function historyHeader(kind: number, keyBytes: Buffer, valueBytes: number, createRevision: number, version: number, previousRevision: number): Buffer {
  const record = Buffer.allocUnsafe(HISTORY_HEADER_BYTES + keyBytes.length + valueBytes);
  record[0] = kind;
  writeU64(record, OFFSET_CREATE, createRevision);
  writeU64(record, OFFSET_VERSION, version);
  writeU64(record, OFFSET_PREVIOUS, previousRevision);
  record.writeUInt32BE(keyBytes.length, OFFSET_KEY_LENGTH);
  keyBytes.copy(record, HISTORY_HEADER_BYTES);
  return record;
}

/** Check a history record's framing; used on import, where the bytes come from a peer. */
export function historyRecordProblem(record: Buffer): string | null {
  if (record.length < HISTORY_HEADER_BYTES) return `history record of ${record.length} bytes is shorter than its header`;
  const kind = record[0];
  if (kind !== HISTORY_PUT && kind !== HISTORY_TOMBSTONE) return `history record of unknown kind ${kind}`;
  const keyLength = record.readUInt32BE(OFFSET_KEY_LENGTH);
  if (keyLength === 0 || HISTORY_HEADER_BYTES + keyLength > record.length) return 'history record key overruns the record';
  if (kind === HISTORY_TOMBSTONE && HISTORY_HEADER_BYTES + keyLength !== record.length) return 'tombstone carries a value';
  for (const offset of [OFFSET_CREATE, OFFSET_VERSION, OFFSET_PREVIOUS]) {
    if (record.readUInt32BE(offset) >= 0x20_0000) return 'history record integer beyond 2^53';
  }
  return null;
}

/** What compaction needs of a record, without decoding its value. */
export function historyRecordLinks(record: Buffer): { readonly keyBytes: Buffer; readonly tombstone: boolean; readonly previousRevision: number } {
  const keyLength = record.readUInt32BE(OFFSET_KEY_LENGTH);
  return {
    keyBytes: Buffer.from(record.subarray(HISTORY_HEADER_BYTES, HISTORY_HEADER_BYTES + keyLength)),
    tombstone: record[0] === HISTORY_TOMBSTONE,
    previousRevision: readU64(record, OFFSET_PREVIOUS),
  };
}

/** The previousRevision link of a record, read in place (the walk of a read at a past revision). */
export function historyPreviousRevision(record: Buffer): number {
  return readU64(record, OFFSET_PREVIOUS);
}

/** True when the record is a change of the key `keyBytes` (a guard on every step of a walk). */
export function historyRecordIsOfKey(record: Buffer, keyBytes: Buffer): boolean {
  const keyLength = record.readUInt32BE(OFFSET_KEY_LENGTH);
  return keyLength === keyBytes.length && record.compare(keyBytes, 0, keyLength, HISTORY_HEADER_BYTES, HISTORY_HEADER_BYTES + keyLength) === 0;
}

/** A copy of `record` linked to `previousRevision` instead (an import mending an older sender's link). */
export function withPreviousRevision(record: Buffer, previousRevision: number): Buffer {
  const copy = Buffer.from(record);
  writeU64(copy, OFFSET_PREVIOUS, previousRevision);
  return copy;
}

/** The value bytes of a put record, as a view (the hash feeds them without decoding). */
export function historyValueBytes(record: Buffer): Buffer {
  return record.subarray(HISTORY_HEADER_BYTES + record.readUInt32BE(OFFSET_KEY_LENGTH));
}

export function decodeHistory(record: Buffer): HistoryRecord {
  const keyLength = record.readUInt32BE(OFFSET_KEY_LENGTH);
  const keyBytes = Buffer.from(record.subarray(HISTORY_HEADER_BYTES, HISTORY_HEADER_BYTES + keyLength));
  const previousRevision = readU64(record, OFFSET_PREVIOUS);
  if (record[0] === HISTORY_TOMBSTONE) return { kind: 'tombstone', keyBytes, previousRevision };
  invariant(record[0] === HISTORY_PUT, () => `history record of unknown kind ${record[0]}`);
  return {
    kind: 'put',
    keyBytes,
    createRevision: readU64(record, OFFSET_CREATE),
    version: readU64(record, OFFSET_VERSION),
    previousRevision,
    value: record.toString('utf8', HISTORY_HEADER_BYTES + keyLength),
  };
}

// ---- Sessions (exactly-once) ----------------------------------------------------------------
// sessions:        <clientId bytes> -> SessionRecord
// session results: <clientId length u16> <clientId bytes> <seq u64> -> MessagePack CommandResult
// by index / time: <u64> <clientId bytes> -> (empty), the order in which idle clients expire

export interface SessionRecord {
  /** Log index of the client's latest applied command. */
  readonly lastIndex: number;
  /** proposedAtMs of the client's latest applied command. */
  readonly lastProposedAtMs: number;
  /** The highest sequence number the client has acknowledged. */
  readonly ackedSeq: number;
  /** The highest sequence number whose result was dropped by the per-client bound. */
  readonly evictedSeqMax: number;
  /** Number of results stored for this client. */
  readonly resultCount: number;
  /** The position under which the by-index and by-time orders list this client (may lag). */
  readonly indexedIndex: number;
  readonly indexedProposedAtMs: number;
}

export const SESSION_RECORD_BYTES = 7 * U64_BYTES;

export function encodeSession(session: SessionRecord): Buffer {
  const value = Buffer.allocUnsafe(SESSION_RECORD_BYTES);
  writeU64(value, 0, session.lastIndex);
  writeU64(value, 8, session.lastProposedAtMs);
  writeU64(value, 16, session.ackedSeq);
  writeU64(value, 24, session.evictedSeqMax);
  writeU64(value, 32, session.resultCount);
  writeU64(value, 40, session.indexedIndex);
  writeU64(value, 48, session.indexedProposedAtMs);
  return value;
}

export function decodeSession(value: Buffer): SessionRecord {
  invariant(value.length === SESSION_RECORD_BYTES, () => `session record of ${value.length} bytes`);
  return {
    lastIndex: readU64(value, 0),
    lastProposedAtMs: readU64(value, 8),
    ackedSeq: readU64(value, 16),
    evictedSeqMax: readU64(value, 24),
    resultCount: readU64(value, 32),
    indexedIndex: readU64(value, 40),
    indexedProposedAtMs: readU64(value, 48),
  };
}

export function resultKey(clientIdBytes: Buffer, seq: number): Buffer {
  const key = Buffer.allocUnsafe(2 + clientIdBytes.length + U64_BYTES);
  key.writeUInt16BE(clientIdBytes.length, 0);
  clientIdBytes.copy(key, 2);
  writeU64(key, 2 + clientIdBytes.length, seq);
  return key;
}

/** Above every result key of the client: its prefix followed by eight 0xff bytes. */
export function resultKeyAfterClient(clientIdBytes: Buffer): Buffer {
  const key = Buffer.alloc(2 + clientIdBytes.length + U64_BYTES, 0xff);
  key.writeUInt16BE(clientIdBytes.length, 0);
  clientIdBytes.copy(key, 2);
  return key;
}

export function resultKeySeq(key: Buffer): number {
  return readU64(key, key.length - U64_BYTES);
}

export function resultKeyClient(key: Buffer): Buffer {
  return Buffer.from(key.subarray(2, 2 + key.readUInt16BE(0)));
}

export function orderKey(position: number, clientIdBytes: Buffer): Buffer {
  const key = Buffer.allocUnsafe(U64_BYTES + clientIdBytes.length);
  writeU64(key, 0, position);
  clientIdBytes.copy(key, U64_BYTES);
  return key;
}

export function orderKeyPosition(key: Buffer): number {
  return readU64(key, 0);
}

export function orderKeyClient(key: Buffer): Buffer {
  return Buffer.from(key.subarray(U64_BYTES));
}
