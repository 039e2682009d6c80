// The sending end of a snapshot, on a connection of its own so heartbeats on the Raft connection
// are never stuck behind megabytes of image. Chunks are written as fast as the socket takes them and
// no faster: when a write says the buffer is full, we wait for 'drain' before pulling the next chunk
// from the source, so at most a chunk or so sits in our memory however slow the receiver is. The
// outcome is the receiver's verdict; anything else (connection lost, refused, source failed,
// deadline passed, transport stopped) is `false`, and Raft will try again.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/logger.js';
import { decodeValue, encodeMessage, encodeValue } from '../codec/raft-codec.js';
import type { NodeId, SnapshotRequest } from '../raft/types.js';
import { type FrameConnection, ProtocolError } from './connection.js';
import { dial } from './dial.js';
import { encodeFrame, FrameType } from './frame.js';
import { helloFor } from './handshake.js';
import { checkSnapshotResult, type SnapshotResult } from './snapshot-frames.js';
import type { WarnLimiter } from './warn-limiter.js';

export const DEFAULT_SNAPSHOT_TIMEOUT_MS = 10 * 60 * 1000;

export interface SnapshotSendContext {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly address: string;
  readonly maxFrameBytes: number;
  readonly livenessTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly handshakeTimeoutMs: number;
  /** The whole transfer, install included, must finish within this. */
  readonly snapshotTimeoutMs: number;
  readonly logger: Logger;
  readonly warnings: WarnLimiter;
}

/** A one-shot outcome: the first settle wins. */
class Outcome {
  readonly promise: Promise<SnapshotResult>;
  settled = false;
  private resolve!: (result: SnapshotResult) => void;
  constructor() {
    this.promise = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }
  settle(result: SnapshotResult): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(result);
  }
}

export class SnapshotSend {
  /** Resolves true once the receiver installed the snapshot, false on any failure. Never rejects. */
  readonly result: Promise<boolean>;
  private readonly outcome = new Outcome();
  private connection: FrameConnection | null = null;
  private bytesSent = 0;
  private chunksSent = 0;
  /** Once streaming starts, stream() owns closing the source; before that, run() does. */
  private sourceTaken = false;

  constructor(private readonly context: SnapshotSendContext, private readonly to: NodeId, private readonly request: SnapshotRequest, chunks: AsyncIterable<Uint8Array>) {
    this.result = this.run(chunks).catch((error: unknown) => {
      context.logger.error('snapshot send failed unexpectedly', { to, error });
      return false;
    });
  }

  /** Ends the transfer now; `result` resolves false. */
  abort(reason: string): void {
    this.outcome.settle({ ok: false, reason });
    this.connection?.destroy(reason);
  }

  private async run(chunks: AsyncIterable<Uint8Array>): Promise<boolean> {
    const { context, to, outcome } = this;
    const startedMs = performance.now();
    const deadline = setTimeout(() => this.abort(`not finished within ${context.snapshotTimeoutMs} ms`), context.snapshotTimeoutMs);
    try {
      const dialing = dial({
        address: context.address,
        hello: helloFor(context.clusterId, context.selfId, 'snapshot'),
        expectedNodeId: to,
        handshakeTimeoutMs: context.handshakeTimeoutMs,
        maxFrameBytes: context.maxFrameBytes,
        livenessTimeoutMs: context.livenessTimeoutMs,
        logger: context.logger,
        warnings: context.warnings,
        warnKey: `member ${to}`,
        onEstablished: (connection) => {
          connection.establish(context.pingIntervalMs);
          return (type, payload) => {
            if (type !== FrameType.snapshotResult) throw new ProtocolError(`frame type ${type} is not allowed from a snapshot receiver`);
            outcome.settle(checkSnapshotResult(decodeValue(payload)));
            connection.end('snapshot answered');
          };
        },
      });
      const connection = dialing.connection;
      this.connection = connection;
      if (outcome.settled) connection.destroy('aborted');
      connection.onClose((reason) => outcome.settle({ ok: false, reason: `connection closed: ${reason}` }));
      await dialing.established;
      connection.sendFrame(FrameType.snapshotHeader, encodeMessage(this.request));
      await this.stream(connection, chunks);
      if (!outcome.settled) connection.sendFrame(FrameType.snapshotEnd, encodeValue({ bytes: this.bytesSent, chunks: this.chunksSent }));
      const result = await outcome.promise;
      const durationMs = Math.round(performance.now() - startedMs);
      if (result.ok) context.logger.info('snapshot sent', { to, index: this.request.snapshot.index, bytes: this.bytesSent, durationMs });
      else context.warnings.warn(`snapshot:${to}`, 'snapshot not installed', { to, index: this.request.snapshot.index, reason: result.reason, bytesSent: this.bytesSent, durationMs });
      return result.ok;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.abort(message);
      // The first settle wins, so this names the original cause (say, the connection closing).
      const result = await outcome.promise;
      context.warnings.warn(`snapshot:${to}`, 'snapshot send failed', { to, index: this.request.snapshot.index, reason: result.ok ? message : result.reason, bytesSent: this.bytesSent });
      return false;
    } finally {
      clearTimeout(deadline);
      this.connection?.destroy('snapshot send finished');
      if (!this.sourceTaken) releaseSource(chunks);
    }
  }

  /** Pulls chunks only while the socket keeps up; stops as soon as the outcome is known. */
  private async stream(connection: FrameConnection, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const { outcome } = this;
    this.sourceTaken = true;
    const stopped = outcome.promise.then(() => null);
    const iterator = chunks[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        const pending = iterator.next();
        // If we stop waiting for it, a later rejection must not become an unhandled one.
        pending.catch(() => {});
        const step = await Promise.race([pending, stopped]);
        if (step === null) break;
        if (step.done === true) {
          finished = true;
          break;
        }
        const chunk = step.value;
        if (!(chunk instanceof Uint8Array)) throw new TypeError('a snapshot chunk is not a Uint8Array');
        // Checking isClosing matters: between a destroy and its 'close' event, writes fail and
        // whenWritable resolves at once, and a source that never waits would spin on microtasks
        // and starve the very event that ends the transfer.
        for (let offset = 0; offset < chunk.byteLength && !outcome.settled && !connection.isClosing; offset += this.context.maxFrameBytes) {
          const piece = chunk.subarray(offset, Math.min(chunk.byteLength, offset + this.context.maxFrameBytes));
          this.bytesSent += piece.byteLength;
          this.chunksSent += 1;
          if (!connection.write(encodeFrame(FrameType.snapshotChunk, piece))) await Promise.race([connection.whenWritable(), stopped]);
        }
        if (outcome.settled || connection.isClosing) break;
      }
    } finally {
      // Let the source release what it holds (a file handle, say) when we stop early.
      if (!finished) void Promise.resolve().then(() => iterator.return?.()).catch(() => {});
    }
  }
}

/** Gives a snapshot source that will not be read the chance to release what it holds (a file
 * handle, say), by asking it for an iterator and closing that at once. */
export function releaseSource(chunks: AsyncIterable<Uint8Array>): void {
  try {
    const iterator = chunks[Symbol.asyncIterator]();
    void Promise.resolve(iterator.return?.()).catch(() => {});
  } catch {
    // A source that cannot even make an iterator holds nothing to release.
  }
}
