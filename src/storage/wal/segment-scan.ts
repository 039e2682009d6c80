// Walks the records of one segment held in memory. Pure: no I/O, no decoding. It stops at the first
// record that is incomplete or fails its checksum and reports where; recovery decides whether that
// is a torn tail (cut it off) or damage (stop the node).

import { checksum, isRecordTypeCode, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, type RecordTypeCode } from './format.js';

export interface ScanProblem {
  /** Byte offset of the record that could not be read. */
  readonly offset: number;
  readonly reason: string;
  /** False when the record cannot be the remains of a torn write (its checksum passed). */
  readonly mayBeTorn: boolean;
}

export interface ScanResult {
  /** End of the last good record: where the next record would go. */
  readonly endOffset: number;
  readonly problem: ScanProblem | null;
}

export type RecordVisitor = (type: RecordTypeCode, payload: Buffer, offset: number) => void;

/** Visits each record from `startOffset` until the end of `bytes` or the first bad record. */
export function scanRecords(bytes: Buffer, startOffset: number, visit: RecordVisitor): ScanResult {
  let at = startOffset;
  while (at < bytes.length) {
    const remaining = bytes.length - at;
    if (remaining < RECORD_HEADER_BYTES) return { endOffset: at, problem: { offset: at, reason: `record header is incomplete (${remaining} of ${RECORD_HEADER_BYTES} bytes)`, mayBeTorn: true } };
    const length = bytes.readUInt32LE(at);
    if (length > RECORD_PAYLOAD_BYTES_MAX) return { endOffset: at, problem: { offset: at, reason: `record length ${length} is over the limit (${RECORD_PAYLOAD_BYTES_MAX})`, mayBeTorn: true } };
    const end = at + RECORD_HEADER_BYTES + length;
    if (end > bytes.length) return { endOffset: at, problem: { offset: at, reason: `record is incomplete (${remaining} of ${RECORD_HEADER_BYTES + length} bytes)`, mayBeTorn: true } };
    const stored = bytes.readUInt32LE(at + 4);
    if (stored !== checksum(bytes.subarray(at + 8, end))) return { endOffset: at, problem: { offset: at, reason: 'record checksum mismatch', mayBeTorn: true } };
    const type = bytes[at + 8];
    // A record that passes its checksum with an unknown type was written by something else: it is
    // reported like damage (never cut off as a torn tail, since a torn write cannot pass the check).
    if (!isRecordTypeCode(type)) return { endOffset: at, problem: { offset: at, reason: `unknown record type ${type}`, mayBeTorn: false } };
    visit(type, bytes.subarray(at + RECORD_HEADER_BYTES, end), at);
    at = end;
  }
  return { endOffset: at, problem: null };
}

/**
 * Is there a well-formed record anywhere after `offset`? A torn write leaves nothing valid behind
 * it; damage in the middle of a file (a flipped bit, a damaged length field that now points past the
 * end) does. Every byte position is tried, since a damaged length no longer says where the next
 * record starts; only a position whose length fits, whose type is known and whose checksum passes
 * counts, so zeroed or random tails are dismissed cheaply.
 */
export function validRecordAfter(bytes: Buffer, offset: number): boolean {
  for (let at = offset + 1; at + RECORD_HEADER_BYTES <= bytes.length; at++) {
    if (!isRecordTypeCode(bytes[at + 8])) continue;
    const length = bytes.readUInt32LE(at);
    const end = at + RECORD_HEADER_BYTES + length;
    if (length > RECORD_PAYLOAD_BYTES_MAX || end > bytes.length) continue;
    if (bytes.readUInt32LE(at + 4) === checksum(bytes.subarray(at + 8, end))) return true;
  }
  return false;
}

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/** True when every byte is zero: space a file system extended but never got the data for, or
 * space the store preallocated (preallocation.ts). Compared natively, a chunk at a time. */
export function allZero(bytes: Buffer): boolean {
  for (let at = 0; at < bytes.length; at += ZERO_CHUNK.length) {
    const part = bytes.subarray(at, at + ZERO_CHUNK.length);
    if (!part.equals(ZERO_CHUNK.subarray(0, part.length))) return false;
  }
  return true;
}
