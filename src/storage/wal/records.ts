// What a write-ahead log record means, and how a batch of them becomes the bytes of one write.
// Payloads are MessagePack through the shared codec, and are validated field by field when read back,
// because a record that passes its checksum can still have been written by a buggy build.

import { checkHardState, checkSnapshotMeta, CodecError, decodeEntry, decodeValue, encodeEntry, encodeValue } from '../../codec/raft-codec.js';
import type { Entry, HardState, Index, SnapshotMeta } from '../../raft/types.js';
import { BATCH_BYTES_MAX, checksum, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, RecordType, type RecordTypeCode } from './format.js';

export type WalRecord =
  /** Appends one entry; its index must be the next one. */
  | { readonly type: 'entry'; readonly entry: Entry }
  | { readonly type: 'hardState'; readonly hardState: HardState }
  /** A snapshot covering every index up to `meta.index` exists: the compaction point. With
   * `replacesLog` (a snapshot received from the leader), every entry held is dropped too and the next
   * entry is `meta.index + 1`; one record, so a crash cannot keep the snapshot without the drop. */
  | { readonly type: 'snapshotMeta'; readonly meta: SnapshotMeta; readonly replacesLog: boolean }
  /** The log from `fromIndex` on is discarded (Raft's conflicting suffix); the next entry is `fromIndex`. */
  | { readonly type: 'truncate'; readonly fromIndex: Index };

function payloadOf(record: WalRecord): Uint8Array {
  switch (record.type) {
    case 'entry': return encodeEntry(record.entry);
    case 'hardState': {
      const { term, votedFor, commitIndex } = record.hardState;
      return encodeValue({ term, votedFor, commitIndex });
    }
    case 'snapshotMeta': {
      const { index, term, membership } = record.meta;
      const members = membership.members.map(({ id, role, peerAddr, httpAddr }) => ({ id, role, peerAddr, httpAddr }));
      return encodeValue({ meta: { index, term, membership: { members } }, replacesLog: record.replacesLog });
    }
    case 'truncate': return encodeValue({ fromIndex: record.fromIndex });
  }
}

/** Encodes records into one contiguous buffer, ready for a single write. */
export function encodeRecords(records: readonly WalRecord[]): Buffer {
  const payloads = records.map(payloadOf);
  let totalBytes = 0;
  for (const payload of payloads) {
    if (payload.byteLength > RECORD_PAYLOAD_BYTES_MAX) throw new RangeError(`a record of ${payload.byteLength} bytes is over the ${RECORD_PAYLOAD_BYTES_MAX}-byte limit`);
    totalBytes += RECORD_HEADER_BYTES + payload.byteLength;
  }
  if (totalBytes > BATCH_BYTES_MAX) throw new RangeError(`a batch of ${totalBytes} bytes is over the ${BATCH_BYTES_MAX}-byte limit`);
  const out = Buffer.allocUnsafe(totalBytes);
  let at = 0;
  for (let k = 0; k < records.length; k++) {
    const payload = payloads[k];
    out.writeUInt32LE(payload.byteLength, at);
    out[at + 8] = RecordType[records[k].type];
    out.set(payload, at + RECORD_HEADER_BYTES);
    out.writeUInt32LE(checksum(out.subarray(at + 8, at + RECORD_HEADER_BYTES + payload.byteLength)), at + 4);
    at += RECORD_HEADER_BYTES + payload.byteLength;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decodeTruncate(payload: Uint8Array): WalRecord {
  const value = decodeValue(payload);
  if (!isRecord(value)) throw new CodecError('truncate payload is not a map');
  const { fromIndex } = value;
  if (typeof fromIndex !== 'number' || !Number.isSafeInteger(fromIndex) || fromIndex < 1) throw new CodecError('truncate fromIndex is not a positive integer');
  return { type: 'truncate', fromIndex };
}

function decodeSnapshotMeta(payload: Uint8Array): WalRecord {
  const value = decodeValue(payload);
  if (!isRecord(value)) throw new CodecError('snapshot meta payload is not a map');
  if (typeof value.replacesLog !== 'boolean') throw new CodecError('snapshot meta replacesLog is not a boolean');
  return { type: 'snapshotMeta', meta: checkSnapshotMeta(value.meta), replacesLog: value.replacesLog };
}

/** Decodes a payload whose checksum already passed; throws CodecError if its shape is wrong. */
export function decodeRecord(type: RecordTypeCode, payload: Uint8Array): WalRecord {
  switch (type) {
    case RecordType.entry: return { type: 'entry', entry: decodeEntry(payload) };
    case RecordType.hardState: return { type: 'hardState', hardState: checkHardState(decodeValue(payload)) };
    case RecordType.snapshotMeta: return decodeSnapshotMeta(payload);
    case RecordType.truncate: return decodeTruncate(payload);
  }
}
