// The outbound half of one peer pair: our own Raft connection to one member, dialed lazily on the
// first message and redialed forever after (with capped, jittered backoff) until the transport stops
// or the member leaves the membership. Messages wait in a bounded queue and go out as one socket
// write holding many frames (at the end of each send() of the transport, or once per event-loop
// turn when queued otherwise), so a burst of Raft traffic costs one syscall, not a hundred. A full
// queue drops the newest message and counts it: Raft retransmits, and a dead peer must not make
// our memory grow.

import type { Logger } from '../common/logger.js';
import type { NodeId } from '../raft/types.js';
import { backoffDelayMs, type BackoffOptions } from './backoff.js';
import { type FrameConnection, type FrameHandler, ProtocolError } from './connection.js';
import { dial, type Dialing } from './dial.js';
import { encodeFrames, FRAME_HEADER_BYTES, FrameType } from './frame.js';
import { helloFor } from './handshake.js';
import type { WarnLimiter } from './warn-limiter.js';

/** One write carries at most this much, so a long queue is sent in slices and the loop breathes. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export interface PeerLinkContext {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly peerAddress: (id: NodeId) => string | undefined;
  readonly maxQueuedBytes: number;
  readonly maxFrameBytes: number;
  readonly livenessTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly handshakeTimeoutMs: number;
  readonly backoff: BackoffOptions;
  readonly logger: Logger;
  readonly warnings: WarnLimiter;
}

export interface PeerLinkStatus {
  readonly connected: boolean;
  /** Bytes of frames waiting in our queue (not counting what the socket already holds). */
  readonly queuedBytes: number;
  /** Messages dropped because the queue was full or the member had no address. */
  readonly dropped: number;
  /** Dial attempts after the first one. */
  readonly reconnects: number;
}

/**
 * idle: no connection and no reason to have one yet; dialing: TCP connect and handshake running;
 * connected: frames flow; waiting: backing off before the next dial; closed: the transport stopped.
 */
type LinkState = 'idle' | 'dialing' | 'connected' | 'waiting' | 'closed';

export class PeerLink {
  private state: LinkState = 'idle';
  /** Encoded messages in send order; `queuedBytes` counts them with their frame headers. */
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private dials = 0;
  /** Failed attempts since the last established connection; drives the backoff. */
  private failures = 0;
  private connection: FrameConnection | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private flushImmediate: NodeJS.Immediate | null = null;
  private waitingForDrain = false;
  private readonly warnKey: string;

  constructor(readonly peerId: NodeId, private readonly context: PeerLinkContext) {
    this.warnKey = `member ${peerId}`;
  }

  status(): PeerLinkStatus {
    return { connected: this.state === 'connected', queuedBytes: this.queuedBytes, dropped: this.dropped, reconnects: Math.max(0, this.dials - 1) };
  }

  /** Queues one encoded Raft message; never blocks, never throws. */
  enqueue(payload: Uint8Array): void {
    if (this.state === 'closed') return;
    const frameBytes = FRAME_HEADER_BYTES + payload.byteLength;
    if (this.queuedBytes + frameBytes > this.context.maxQueuedBytes) {
      this.dropped += 1;
      this.context.warnings.warn(`queue-full:${this.peerId}`, 'outbound queue full; dropping messages', { peer: this.peerId, queuedBytes: this.queuedBytes, dropped: this.dropped, connected: this.state === 'connected' });
      return;
    }
    this.queue.push(payload);
    this.queuedBytes += frameBytes;
    if (this.state === 'idle') this.dial();
    else if (this.state === 'connected') this.scheduleFlush();
  }

  /** Write the queue now rather than at the end of this event-loop turn (if connected and the
   * socket takes it; otherwise it goes when it can, as usual). */
  flushNow(): void {
    if (this.flushImmediate === null) return;
    clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.flush();
  }

  /** Counts a message dropped before it reached the queue (too large to ever send). */
  countDropped(): void {
    this.dropped += 1;
  }

  close(): Promise<void> {
    this.state = 'closed';
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.reconnectTimer = null;
    this.flushImmediate = null;
    this.queue = [];
    this.queuedBytes = 0;
    const connection = this.connection;
    this.connection = null;
    if (connection === null) return Promise.resolve();
    connection.destroy('transport stopped');
    return connection.whenClosed();
  }

  private dial(): void {
    const address = this.context.peerAddress(this.peerId);
    if (address === undefined) {
      this.forget();
      return;
    }
    const { context } = this;
    this.state = 'dialing';
    this.dials += 1;
    let dialing: Dialing;
    try {
      dialing = dial({
        address,
        hello: helloFor(context.clusterId, context.selfId, 'raft'),
        expectedNodeId: this.peerId,
        handshakeTimeoutMs: context.handshakeTimeoutMs,
        maxFrameBytes: context.maxFrameBytes,
        livenessTimeoutMs: context.livenessTimeoutMs,
        logger: context.logger,
        warnings: context.warnings,
        warnKey: this.warnKey,
        onEstablished: (connection) => this.established(connection, address),
      });
    } catch (error) {
      context.warnings.warn(`dial:${this.peerId}`, 'cannot dial peer', { peer: this.peerId, address, error });
      this.retryLater();
      return;
    }
    // Kept from the start so close() can cut a dial in progress.
    this.connection = dialing.connection;
    dialing.established.catch((error: unknown) => {
      if (this.connection === dialing.connection) this.connection = null;
      if (this.state === 'closed') return;
      context.warnings.warn(`dial:${this.peerId}`, 'cannot connect to peer', { peer: this.peerId, address, reason: error instanceof Error ? error.message : String(error), attempt: this.failures + 1 });
      this.retryLater();
    });
  }

  private established(connection: FrameConnection, address: string): FrameHandler {
    if (this.state === 'closed') throw new Error('link closed during the handshake');
    this.state = 'connected';
    this.failures = 0;
    connection.establish(this.context.pingIntervalMs);
    connection.onClose((reason) => this.lost(connection, reason));
    this.context.logger.info('connected to peer', { peer: this.peerId, address, reconnects: Math.max(0, this.dials - 1) });
    this.scheduleFlush();
    // Only keepalive answers come back on our own connection; the connection handles those.
    return (type) => {
      throw new ProtocolError(`frame type ${type} is not allowed from the acceptor of a raft connection`);
    };
  }

  private lost(connection: FrameConnection, reason: string): void {
    if (this.connection === connection) this.connection = null;
    this.waitingForDrain = false;
    if (this.state === 'closed') return;
    this.context.warnings.warn(`lost:${this.peerId}`, 'lost connection to peer', { peer: this.peerId, reason, queuedBytes: this.queuedBytes });
    this.retryLater();
  }

  private retryLater(): void {
    this.failures += 1;
    this.state = 'waiting';
    const delayMs = backoffDelayMs(this.failures, this.context.backoff);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === 'waiting') this.dial();
    }, delayMs);
  }

  /** The member has no address (it left the membership): its queue goes, and so does the link
   * until someone sends to it again. */
  private forget(): void {
    this.dropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.state = 'idle';
    this.failures = 0;
    this.context.warnings.warn(`no-address:${this.peerId}`, 'peer has no address in the membership; its messages are dropped', { peer: this.peerId });
  }

  private scheduleFlush(): void {
    if (this.flushImmediate !== null || this.waitingForDrain) return;
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = null;
      this.flush();
    });
  }

  /** Writes the queue (up to MAX_BATCH_BYTES) as one buffer of frames in one write call. */
  private flush(): void {
    const connection = this.connection;
    if (this.state !== 'connected' || connection === null || connection.isClosing || this.queue.length === 0) return;
    if (connection.needsDrain) {
      this.waitForDrain(connection);
      return;
    }
    let count = 0;
    let bytes = 0;
    while (count < this.queue.length) {
      const frameBytes = FRAME_HEADER_BYTES + this.queue[count].byteLength;
      if (count > 0 && bytes + frameBytes > MAX_BATCH_BYTES) break;
      bytes += frameBytes;
      count += 1;
    }
    const batch = encodeFrames(FrameType.raftMessage, count === this.queue.length ? this.queue : this.queue.slice(0, count));
    this.queue = count === this.queue.length ? [] : this.queue.slice(count);
    this.queuedBytes -= bytes;
    const writable = connection.write(batch);
    if (this.queue.length === 0) return;
    if (writable) this.scheduleFlush();
    else this.waitForDrain(connection);
  }

  private waitForDrain(connection: FrameConnection): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    void connection.whenWritable().then(() => {
      this.waitingForDrain = false;
      if (this.connection === connection) this.scheduleFlush();
    });
  }
}
