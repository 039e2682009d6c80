// The byte format of write-ahead log segments (docs/storage-format.md is the reference). All integers
// are little-endian. Checksums are CRC-32/ISO-HDLC, the CRC-32 of zlib, gzip and PNG, as computed by
// node:zlib's crc32 (polynomial 0x04C11DB7 reflected, init and final xor 0xFFFFFFFF).
//
// Segment header, 24 bytes:
//   0  8  magic   89 52 4B 56 57 41 4C 0A   ("\x89RKVWAL\n": a high first byte and a newline catch
//                                            files mangled by text-mode transfers)
//   8  4  u32 format version (1)
//  12  8  u64 first index: the index the next entry had when the segment was created
//  20  4  u32 CRC-32 of bytes 0..20, so a damaged first index cannot pass unnoticed
//
// Record, 9 + length bytes:
//   0  4  u32 length of the payload (the bytes after the type)
//   4  4  u32 CRC-32 of the type byte and the payload
//   8  1  u8 type (1 entry, 2 hard state, 3 snapshot meta, 4 truncate; 0 is never valid, so zeroed
//                  space never reads as a record)
//   9  length  payload

import { crc32 } from 'node:zlib';

export const SEGMENT_MAGIC = Buffer.from([0x89, 0x52, 0x4b, 0x56, 0x57, 0x41, 0x4c, 0x0a]);
export const SEGMENT_FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 9;
/** No single record is larger than this; a length field beyond it is damage, not data. */
export const RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;
/** No single save() or compact() writes more than this at once: a bound on one Buffer and one write. */
export const BATCH_BYTES_MAX = 1024 * 1024 * 1024;
export const SEGMENT_SIZE_BYTES_DEFAULT = 64 * 1024 * 1024;

export const RecordType = {
  entry: 1,
  hardState: 2,
  snapshotMeta: 3,
  truncate: 4,
} as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

export function isRecordTypeCode(value: number): value is RecordTypeCode {
  return value >= RecordType.entry && value <= RecordType.truncate;
}

export function checksum(bytes: Uint8Array): number {
  return crc32(bytes) >>> 0;
}

export function encodeSegmentHeader(firstIndex: number): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(header, 0);
  header.writeUInt32LE(SEGMENT_FORMAT_VERSION, 8);
  header.writeBigUInt64LE(BigInt(firstIndex), 12);
  header.writeUInt32LE(checksum(header.subarray(0, 20)), 20);
  return header;
}

export type HeaderCheck =
  | { readonly ok: true; readonly firstIndex: number }
  | { readonly ok: false; readonly offset: number; readonly reason: string };

/** Checks a segment header; on failure says which field (by byte offset) is wrong. */
export function decodeSegmentHeader(bytes: Buffer): HeaderCheck {
  if (bytes.length < SEGMENT_HEADER_BYTES) return { ok: false, offset: bytes.length, reason: `the header is incomplete (${bytes.length} of ${SEGMENT_HEADER_BYTES} bytes)` };
  if (!bytes.subarray(0, 8).equals(SEGMENT_MAGIC)) return { ok: false, offset: 0, reason: 'bad magic: not a write-ahead log segment' };
  const version = bytes.readUInt32LE(8);
  if (version !== SEGMENT_FORMAT_VERSION) return { ok: false, offset: 8, reason: `unsupported format version ${version} (this build reads version ${SEGMENT_FORMAT_VERSION})` };
  const stored = bytes.readUInt32LE(20);
  if (stored !== checksum(bytes.subarray(0, 20))) return { ok: false, offset: 20, reason: 'header checksum mismatch (the header is damaged)' };
  const firstIndex = bytes.readBigUInt64LE(12);
  if (firstIndex < 1n || firstIndex > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, offset: 12, reason: `first index ${firstIndex} is out of range` };
  return { ok: true, firstIndex: Number(firstIndex) };
}

// ---- Segment names ------------------------------------------------------------------------------
// wal-<sequence, 12 digits>-<first index, 20 digits>.log: sorting the names sorts the segments, and
// a listing shows at a glance where each one starts.

const SEGMENT_NAME = /^wal-(\d{12})-(\d{20})\.log$/;

export interface SegmentName {
  readonly sequence: number;
  readonly firstIndex: number;
  readonly name: string;
}

export function segmentFileName(sequence: number, firstIndex: number): string {
  return `wal-${String(sequence).padStart(12, '0')}-${String(firstIndex).padStart(20, '0')}.log`;
}

export function parseSegmentFileName(name: string): SegmentName | null {
  const match = SEGMENT_NAME.exec(name);
  if (match === null) return null;
  const sequence = Number(match[1]);
  const firstIndex = Number(match[2]);
  if (!Number.isSafeInteger(firstIndex)) return null;
  return { sequence, firstIndex, name };
}
