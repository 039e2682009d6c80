// Length-prefixed binary frames on a TCP stream: `u32 length (big-endian) | u8 type | payload`,
// where `length` counts the payload bytes only (not the 5-byte header). TCP delivers bytes, not
// messages: one read may hold half a frame or a hundred of them, so the decoder below keeps the
// chunks it was given and cuts frames out of them, copying each byte at most once.

/** Every frame type on the wire. Which types are allowed depends on the connection's purpose. */
export const FrameType = {
  /** Dialer -> acceptor, the first frame of every connection (see handshake.ts). */
  hello: 1,
  /** Acceptor -> dialer: `{ ok: true, nodeId }` or `{ ok: false, reason }`. */
  helloReply: 2,
  /** Keepalive: an empty frame, so a silent link can be told from a quiet one. */
  ping: 3,
  pong: 4,
  /** One encoded Raft message (codec/raft-codec.ts). */
  raftMessage: 5,
  /** Snapshot connection: the SnapshotRequest, then chunks, then an end marker, then the result. */
  snapshotHeader: 6,
  snapshotChunk: 7,
  snapshotEnd: 8,
  snapshotResult: 9,
  /** Client connection: `{ id, body }` and `{ id, ok, body | error }`. */
  clientRequest: 10,
  clientResponse: 11,
} as const;

export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

export function isKnownFrameType(type: number): type is FrameTypeCode {
  return KNOWN_TYPES.has(type);
}

export const FRAME_HEADER_BYTES = 5;
/** Large enough for a full AppendEntries batch or a snapshot chunk, small enough to bound memory. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** The u32 length field cannot say more than this. */
const LENGTH_FIELD_MAX = 0xffff_ffff;

export interface Frame {
  readonly type: number;
  /** A view into the received bytes; valid as long as the caller keeps it. */
  readonly payload: Buffer;
}

/** A peer announced a frame larger than we accept; the connection must be closed. */
export class FrameTooLargeError extends Error {
  override readonly name = 'FrameTooLargeError';
  constructor(readonly announcedBytes: number, readonly maxFrameBytes: number) {
    super(`frame of ${announcedBytes} bytes announced, the limit is ${maxFrameBytes}`);
  }
}

const EMPTY = Buffer.alloc(0);

export function writeFrameHeader(target: Buffer, offset: number, type: number, payloadBytes: number): void {
  if (payloadBytes > LENGTH_FIELD_MAX) throw new RangeError(`frame payload of ${payloadBytes} bytes does not fit a u32 length`);
  target.writeUInt32BE(payloadBytes, offset);
  target.writeUInt8(type, offset + 4);
}

/** One frame as one buffer (header and payload copied together, so it is a single write). */
export function encodeFrame(type: number, payload: Uint8Array = EMPTY): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  writeFrameHeader(frame, 0, type, payload.byteLength);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Many frames of one type in one buffer: the batching path writes this with a single write call. */
export function encodeFrames(type: number, payloads: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const payload of payloads) total += FRAME_HEADER_BYTES + payload.byteLength;
  const batch = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const payload of payloads) {
    writeFrameHeader(batch, offset, type, payload.byteLength);
    batch.set(payload, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + payload.byteLength;
  }
  return batch;
}

/**
 * A streaming frame decoder. `push` hands it bytes as they arrive; `next` returns the next whole
 * frame or null. A frame lying inside one received chunk is returned as a view without copying; a
 * frame spread over several chunks is copied once into a buffer of exactly its size. The announced
 * length is checked against the limit before anything is allocated, so a hostile length such as
 * 0xFFFFFFFF costs nothing but the close.
 */
export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  /** Index of the first chunk still holding unread bytes, and the read offset inside it. */
  private head = 0;
  private headOffset = 0;
  private bufferedBytes = 0;
  /** The header of the frame being waited for, read once so a slow frame is not re-parsed. */
  private pendingType = -1;
  private pendingLength = -1;

  constructor(readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 0) throw new RangeError('maxFrameBytes must be a non-negative integer');
  }

  /** Bytes received and not yet returned in a frame (at most one frame plus one read). */
  get buffered(): number {
    return this.bufferedBytes;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(buffer);
    this.bufferedBytes += buffer.byteLength;
  }

  /** The next complete frame, or null if more bytes are needed. Throws FrameTooLargeError. */
  next(): Frame | null {
    if (this.pendingLength < 0) {
      if (this.bufferedBytes < FRAME_HEADER_BYTES) return null;
      const header = this.take(FRAME_HEADER_BYTES);
      const length = header.readUInt32BE(0);
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
      this.pendingLength = length;
      this.pendingType = header.readUInt8(4);
    }
    if (this.bufferedBytes < this.pendingLength) return null;
    const frame: Frame = { type: this.pendingType, payload: this.pendingLength === 0 ? EMPTY : this.take(this.pendingLength) };
    this.pendingLength = -1;
    this.pendingType = -1;
    return frame;
  }

  /** Removes exactly `bytes` (<= bufferedBytes) from the front: a view if they lie in one chunk. */
  private take(bytes: number): Buffer {
    const first = this.chunks[this.head];
    const availableInFirst = first.byteLength - this.headOffset;
    if (availableInFirst >= bytes) {
      const view = first.subarray(this.headOffset, this.headOffset + bytes);
      this.advance(bytes);
      return view;
    }
    const copy = Buffer.allocUnsafe(bytes);
    let filled = 0;
    while (filled < bytes) {
      const chunk = this.chunks[this.head];
      const count = Math.min(chunk.byteLength - this.headOffset, bytes - filled);
      chunk.copy(copy, filled, this.headOffset, this.headOffset + count);
      filled += count;
      this.advance(count);
    }
    return copy;
  }

  /** Moves the read position forward within the head chunk, dropping chunks once fully read. */
  private advance(bytes: number): void {
    this.headOffset += bytes;
    this.bufferedBytes -= bytes;
    if (this.headOffset === this.chunks[this.head].byteLength) {
      this.head += 1;
      this.headOffset = 0;
      // Compact now and then rather than shift() per chunk, which would be quadratic for a frame
      // that arrives in thousands of reads.
      if (this.head === this.chunks.length) {
        this.chunks.length = 0;
        this.head = 0;
      } else if (this.head >= 64) {
        this.chunks.splice(0, this.head);
        this.head = 0;
      }
    }
  }
}
