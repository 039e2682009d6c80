// The snapshot stream format, version 1: the state machine's primary data (history, sessions and
// their results, in the record layouts of encoding.ts) and none of its indexes, which the receiver
// rebuilds (the live key set, the graves of deleted keys, the session expiry orders):
//
//   header:  magic "RKVSNAP\0" (8 bytes) | format version u32 | header length u32 | header (MessagePack:
//            appliedIndex, revision, compactedRevision, compactionCursor, newestProposedAtMs)
//   records: type u8 | key length u32 | value length u32 | key | value
//              type 1 history  (key: revision u64; value: the engine's history record)
//              type 2 session  (key: client id; value: the engine's session record)
//              type 3 result   (key: the engine's result key; value: MessagePack CommandResult)
//   trailer: type 0xff | SHA-256 of every byte before this trailer (32 bytes)
//
// All integers big-endian. History comes in ascending revision order, so the receiver can rebuild
// the live key set by replaying it. The checksum covers the header too; the stream must end right
// after the trailer.

import { createHash, type Hash } from 'node:crypto';
import { decodeValue, encodeValue } from '../codec/raft-codec.js';
import { SnapshotFormatError } from './errors.js';
import { metaProblem, type StateMeta } from './meta.js';

export const SNAPSHOT_MAGIC = Buffer.from('RKVSNAP\0', 'latin1');
export const SNAPSHOT_FORMAT_VERSION = 1;

export const RECORD_HISTORY = 1;
export const RECORD_SESSION = 2;
export const RECORD_RESULT = 3;
const RECORD_TRAILER = 0xff;

const RECORD_HEADER_BYTES = 1 + 4 + 4;
const DIGEST_BYTES = 32;
/** Largest header or record accepted from a peer: a bound on what a garbage length can make us buffer. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Chunks are about this big (a single larger record travels as one chunk). */
export const CHUNK_TARGET_BYTES = 64 * 1024;

export type SnapshotRecordType = typeof RECORD_HISTORY | typeof RECORD_SESSION | typeof RECORD_RESULT;

/**
 * Builds the stream: feed it records, take chunks when they are ready. Records are copied into a
 * chunk buffer and the checksum is fed whole chunks, which keeps the per-record cost to a copy.
 */
export class SnapshotWriter {
  private readonly digest: Hash = createHash('sha256');
  private buffer = Buffer.allocUnsafe(2 * CHUNK_TARGET_BYTES);
  private used = 0;
  /** Chunks ready to be taken, already fed to the checksum. */
  private ready: Buffer[] = [];
  private finished = false;

  constructor(meta: StateMeta) {
    const header = Buffer.from(encodeValue({
      appliedIndex: meta.appliedIndex,
      revision: meta.revision,
      compactedRevision: meta.compactedRevision,
      compactionCursor: meta.compactionCursor,
      newestProposedAtMs: meta.newestProposedAtMs,
    }));
    const fixed = Buffer.allocUnsafe(SNAPSHOT_MAGIC.length + 8);
    SNAPSHOT_MAGIC.copy(fixed, 0);
    fixed.writeUInt32BE(SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC.length);
    fixed.writeUInt32BE(header.length, SNAPSHOT_MAGIC.length + 4);
    this.append(Buffer.concat([fixed, header]));
  }

  record(type: SnapshotRecordType, key: Uint8Array, value: Uint8Array): void {
    if (this.finished) throw new Error('snapshot writer already finished');
    const frameBytes = RECORD_HEADER_BYTES + key.length + value.length;
    if (frameBytes > this.buffer.length) {
      // A record larger than the chunk buffer (a big value) travels as a chunk of its own.
      const frame = Buffer.allocUnsafe(frameBytes);
      writeFrame(frame, 0, type, key, value);
      this.append(frame);
      return;
    }
    if (this.used + frameBytes > this.buffer.length) this.seal();
    writeFrame(this.buffer, this.used, type, key, value);
    this.used += frameBytes;
    if (this.used >= CHUNK_TARGET_BYTES) this.seal();
  }

  /** A chunk if one is ready, else null. */
  takeChunk(): Buffer | null {
    if (this.ready.length === 0) return null;
    const chunk = this.ready.length === 1 ? this.ready[0] : Buffer.concat(this.ready);
    this.ready = [];
    return chunk;
  }

  /** Append the trailer and return the rest of the stream. */
  finish(): Buffer {
    if (this.finished) throw new Error('snapshot writer already finished');
    this.seal();
    this.finished = true;
    const trailer = Buffer.allocUnsafe(1 + DIGEST_BYTES);
    trailer[0] = RECORD_TRAILER;
    this.digest.digest().copy(trailer, 1);
    this.ready.push(trailer);
    return this.takeChunk() as Buffer;
  }

  private append(bytes: Buffer): void {
    this.seal();
    this.digest.update(bytes);
    this.ready.push(bytes);
  }

  /** Close the chunk being filled: checksum it and queue it. */
  private seal(): void {
    if (this.used === 0) return;
    const chunk = this.buffer.subarray(0, this.used);
    this.digest.update(chunk);
    this.ready.push(chunk);
    this.buffer = Buffer.allocUnsafe(this.buffer.length);
    this.used = 0;
  }
}

function writeFrame(target: Buffer, offset: number, type: SnapshotRecordType, key: Uint8Array, value: Uint8Array): void {
  target[offset] = type;
  target.writeUInt32BE(key.length, offset + 1);
  target.writeUInt32BE(value.length, offset + 5);
  target.set(key, offset + RECORD_HEADER_BYTES);
  target.set(value, offset + RECORD_HEADER_BYTES + key.length);
}

export type SnapshotItem =
  | { readonly kind: 'header'; readonly meta: StateMeta }
  | { readonly kind: 'record'; readonly type: SnapshotRecordType; readonly key: Buffer; readonly value: Buffer };

/**
 * Parses the stream as chunks arrive, whatever their boundaries. Refuses anything malformed with a
 * SnapshotFormatError; end() refuses a stream that stopped before its verified trailer.
 */
export class SnapshotReader {
  private readonly digest: Hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private headerSeen = false;
  private trailerSeen = false;

  push(chunk: Uint8Array): SnapshotItem[] {
    if (this.trailerSeen && chunk.length > 0) throw new SnapshotFormatError('bytes after the snapshot trailer');
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingBytes += chunk.length;
    const items: SnapshotItem[] = [];
    for (;;) {
      const item = this.headerSeen ? this.nextRecord() : this.nextHeader();
      if (item === null) break;
      if (item !== 'trailer') items.push(item);
    }
    return items;
  }

  end(): void {
    if (!this.trailerSeen) throw new SnapshotFormatError(this.headerSeen ? 'the snapshot stream ended before its trailer' : 'the snapshot stream ended before its header');
    if (this.pendingBytes > 0) throw new SnapshotFormatError('bytes after the snapshot trailer');
  }

  private nextHeader(): SnapshotItem | null {
    const fixedBytes = SNAPSHOT_MAGIC.length + 8;
    const fixed = this.peek(fixedBytes);
    if (fixed === null) return null;
    if (!fixed.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw new SnapshotFormatError('not a snapshot stream (bad magic)');
    const version = fixed.readUInt32BE(SNAPSHOT_MAGIC.length);
    if (version !== SNAPSHOT_FORMAT_VERSION) throw new SnapshotFormatError(`snapshot format version ${version} is not supported (this build reads ${SNAPSHOT_FORMAT_VERSION})`);
    const headerBytes = fixed.readUInt32BE(SNAPSHOT_MAGIC.length + 4);
    if (headerBytes > MAX_FRAME_BYTES) throw new SnapshotFormatError(`snapshot header of ${headerBytes} bytes`);
    const whole = this.take(fixedBytes + headerBytes);
    if (whole === null) return null;
    this.digest.update(whole);
    this.headerSeen = true;
    return { kind: 'header', meta: checkHeader(whole.subarray(fixedBytes)) };
  }

  private nextRecord(): SnapshotItem | 'trailer' | null {
    if (this.trailerSeen) {
      if (this.pendingBytes > 0) throw new SnapshotFormatError('bytes after the snapshot trailer');
      return null;
    }
    const typeByte = this.peek(1);
    if (typeByte === null) return null;
    if (typeByte[0] === RECORD_TRAILER) {
      const trailer = this.take(1 + DIGEST_BYTES);
      if (trailer === null) return null;
      if (!this.digest.digest().equals(trailer.subarray(1))) throw new SnapshotFormatError('the snapshot checksum does not match its contents');
      this.trailerSeen = true;
      return 'trailer';
    }
    const head = this.peek(RECORD_HEADER_BYTES);
    if (head === null) return null;
    const type = head[0];
    if (type !== RECORD_HISTORY && type !== RECORD_SESSION && type !== RECORD_RESULT) throw new SnapshotFormatError(`unknown snapshot record type ${type}`);
    const keyBytes = head.readUInt32BE(1);
    const valueBytes = head.readUInt32BE(5);
    if (keyBytes + valueBytes > MAX_FRAME_BYTES) throw new SnapshotFormatError(`snapshot record of ${keyBytes + valueBytes} bytes`);
    const frame = this.take(RECORD_HEADER_BYTES + keyBytes + valueBytes);
    if (frame === null) return null;
    this.digest.update(frame);
    return {
      kind: 'record',
      type,
      key: frame.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + keyBytes),
      value: frame.subarray(RECORD_HEADER_BYTES + keyBytes),
    };
  }

  /** The first `bytes` pending bytes without consuming them, or null if not all have arrived. */
  private peek(bytes: number): Buffer | null {
    if (this.pendingBytes < bytes) return null;
    if (this.pending[0].length < bytes) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
    return this.pending[0].subarray(0, bytes);
  }

  /** Consume and return the first `bytes` pending bytes (a copy we own), or null. */
  private take(bytes: number): Buffer | null {
    const head = this.peek(bytes);
    if (head === null) return null;
    const owned = Buffer.from(head);
    const first = this.pending[0];
    if (first.length === bytes) this.pending.shift();
    else this.pending[0] = first.subarray(bytes);
    this.pendingBytes -= bytes;
    return owned;
  }
}

function checkHeader(bytes: Buffer): StateMeta {
  let raw: unknown;
  try {
    raw = decodeValue(bytes);
  } catch (error) {
    throw new SnapshotFormatError(`the snapshot header is not decodable: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null) throw new SnapshotFormatError('the snapshot header is not a record');
  const fields = raw as Record<string, unknown>;
  const number = (name: string): number => {
    const value = fields[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new SnapshotFormatError(`the snapshot header field ${name} is not a non-negative integer`);
    return value;
  };
  const meta: StateMeta = {
    appliedIndex: number('appliedIndex'),
    revision: number('revision'),
    compactedRevision: number('compactedRevision'),
    compactionCursor: number('compactionCursor'),
    newestProposedAtMs: number('newestProposedAtMs'),
  };
  const problem = metaProblem(meta);
  if (problem !== null) throw new SnapshotFormatError(`the snapshot header is inconsistent: ${problem}`);
  return meta;
}
