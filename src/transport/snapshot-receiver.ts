// Inbound snapshot connections: a header frame (the SnapshotRequest), chunk frames, an end frame
// with the totals, then our verdict in a result frame. The chunks reach `onSnapshot` through a
// SnapshotChunkStream, which pauses the socket while the consumer is behind. The verdict is "ok"
// only if `onSnapshot` resolved after the whole stream arrived.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/logger.js';
import { decodeMessage, decodeValue, encodeValue } from '../codec/raft-codec.js';
import type { NodeId, SnapshotRequest } from '../raft/types.js';
import { type FrameConnection, type FrameHandler, ProtocolError } from './connection.js';
import { FrameType } from './frame.js';
import { checkSnapshotEnd, type SnapshotResult } from './snapshot-frames.js';
import { SnapshotChunkStream, SnapshotStreamError } from './snapshot-stream.js';

export type SnapshotHandler = (request: SnapshotRequest, chunks: AsyncIterable<Uint8Array>) => Promise<void>;

export interface SnapshotReceiverContext {
  readonly selfId: NodeId;
  readonly from: NodeId;
  readonly connection: FrameConnection;
  readonly onSnapshot: SnapshotHandler;
  readonly highWaterBytes: number;
  readonly logger: Logger;
}

export function snapshotReceiver(context: SnapshotReceiverContext): FrameHandler {
  const { connection, logger } = context;
  let stream: SnapshotChunkStream | null = null;
  let request: SnapshotRequest | null = null;
  let receivedBytes = 0;
  let receivedChunks = 0;
  let startedMs = 0;

  connection.onClose((reason) => stream?.fail(new SnapshotStreamError(`snapshot stream from member ${context.from} broke before its end: ${reason}`)));

  const answer = (result: SnapshotResult): void => {
    if (result.ok) {
      logger.info('snapshot installed', { from: context.from, index: request?.snapshot.index, bytes: receivedBytes, durationMs: Math.round(performance.now() - startedMs) });
    } else {
      logger.warn('snapshot not installed', { from: context.from, index: request?.snapshot.index, reason: result.reason });
    }
    if (connection.isClosing) return;
    connection.sendFrame(FrameType.snapshotResult, encodeValue(result));
    connection.end('snapshot answered');
  };

  const begin = (header: SnapshotRequest): void => {
    request = header;
    startedMs = performance.now();
    const chunks = new SnapshotChunkStream({ pause: () => connection.pauseReading(), resume: () => connection.resumeReading() }, context.highWaterBytes);
    stream = chunks;
    logger.info('receiving snapshot', { from: context.from, index: header.snapshot.index, term: header.snapshot.term });
    let installing: Promise<void>;
    try {
      installing = Promise.resolve(context.onSnapshot(header, chunks));
    } catch (error) {
      installing = Promise.reject(error);
    }
    installing.then(
      () => answer(chunks.complete ? { ok: true } : { ok: false, reason: 'the receiver finished before the end of the stream' }),
      (error: unknown) => answer({ ok: false, reason: error instanceof Error ? error.message : String(error) }),
    );
  };

  return (type, payload) => {
    if (stream === null) {
      if (type !== FrameType.snapshotHeader) throw new ProtocolError(`expected a snapshot header, got frame type ${type}`);
      const message = decodeMessage(payload);
      if (message.type !== 'snapshotRequest') throw new ProtocolError(`a snapshot header holds a ${message.type}`);
      if (message.from !== context.from || message.to !== context.selfId) throw new ProtocolError(`a snapshot header from ${message.from} to ${message.to} arrived on member ${context.from}'s connection to ${context.selfId}`);
      begin(message);
      return;
    }
    if (stream.complete) throw new ProtocolError(`frame type ${type} after the end of the snapshot`);
    if (type === FrameType.snapshotChunk) {
      receivedBytes += payload.byteLength;
      receivedChunks += 1;
      stream.push(payload);
      return;
    }
    if (type === FrameType.snapshotEnd) {
      const end = checkSnapshotEnd(decodeValue(payload));
      if (end.bytes !== receivedBytes || end.chunks !== receivedChunks) {
        const reason = `the sender sent ${end.bytes} bytes in ${end.chunks} chunks, ${receivedBytes} bytes in ${receivedChunks} chunks arrived`;
        stream.fail(new SnapshotStreamError(reason));
        throw new ProtocolError(reason);
      }
      stream.end();
      return;
    }
    throw new ProtocolError(`frame type ${type} is not allowed on a snapshot connection`);
  };
}
