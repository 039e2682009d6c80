// One framed TCP connection: decodes frames, hands them to the current handler, and keeps the
// connection honest. A cut-off network sends no reset, so TCP alone can leave a half-open
// connection stalling a peer link for many minutes; instead, once the handshake is done, a
// connection that receives no bytes for `livenessTimeoutMs` is destroyed. Keepalive frames (the
// dialer pings, the acceptor pongs) make sure a healthy but quiet connection always hears something.
// Whatever the remote sends, nothing here throws into the socket's event emitter: a broken rule is
// logged (rate-limited) and closes this one connection.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/logger.js';
import { CodecError } from '../codec/raft-codec.js';
import { encodeFrame, FrameDecoder, FrameTooLargeError, FrameType } from './frame.js';
import type { WarnLimiter } from './warn-limiter.js';

export type FrameHandler = (type: number, payload: Buffer) => void;
export type CloseListener = (reason: string) => void;

/** The remote side broke a rule of the protocol; its connection is closed with a warning. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

export interface FrameConnectionOptions {
  readonly socket: Socket;
  readonly side: 'dialer' | 'acceptor';
  readonly maxFrameBytes: number;
  readonly livenessTimeoutMs: number;
  readonly logger: Logger;
  readonly warnings: WarnLimiter;
  /** Rate-limiting key for this connection's warnings until the handshake names the peer. */
  readonly warnKey: string;
  /** How to name the remote end in logs; defaults to the socket's remote address. */
  readonly remoteLabel?: string;
}

/** How long a refused or finished connection may take to flush its last frame before it is cut. */
const GRACEFUL_END_MS = 1000;
/** A liveness timer this late means our own event loop stalled (see checkLiveness). */
const STALL_MS = 50;

export class FrameConnection {
  readonly side: 'dialer' | 'acceptor';
  readonly remoteAddress: string;
  /** Who is at the other end, for logs and rate limiting: the remote address, then the peer. */
  warnKey: string;

  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private readonly livenessTimeoutMs: number;
  private readonly logger: Logger;
  private readonly warnings: WarnLimiter;
  private handler: FrameHandler;
  private readonly closeListeners: CloseListener[] = [];
  private readonly drainWaiters: Array<() => void> = [];
  private established = false;
  private readingPaused = false;
  private lastReceiveMs = performance.now();
  private livenessTimer: NodeJS.Timeout | null = null;
  private livenessDueMs = 0;
  private livenessRecheck: NodeJS.Immediate | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private endTimer: NodeJS.Timeout | null = null;
  /** Set by the first destroy or end, so frames already decoded are not acted on after it. */
  private closingReason: string | null = null;
  private destroyed = false;
  private lastError: Error | null = null;
  private closed = false;

  constructor(options: FrameConnectionOptions) {
    this.socket = options.socket;
    this.side = options.side;
    this.decoder = new FrameDecoder(options.maxFrameBytes);
    this.livenessTimeoutMs = options.livenessTimeoutMs;
    this.logger = options.logger;
    this.warnings = options.warnings;
    this.warnKey = options.warnKey;
    this.remoteAddress = options.remoteLabel ?? describeRemote(options.socket);
    this.handler = () => {
      throw new ProtocolError('frame received before a handler was installed');
    };
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error: Error) => {
      this.lastError = error;
    });
    this.socket.on('drain', () => this.wakeDrainWaiters());
    this.socket.on('close', () => this.onSocketClose());
  }

  get isClosing(): boolean {
    return this.closingReason !== null || this.closed;
  }

  /** Bytes written to the socket and not yet handed to the kernel. */
  get writableBytes(): number {
    return this.socket.writableLength;
  }

  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  setHandler(handler: FrameHandler): void {
    this.handler = handler;
  }

  /** Called once with the reason when the socket has closed, whoever closed it. */
  onClose(listener: CloseListener): void {
    if (this.closed) {
      queueMicrotask(() => safely(this.logger, 'close listener', () => listener(this.closingReason ?? 'closed')));
      return;
    }
    this.closeListeners.push(listener);
  }

  /**
   * The handshake is done: from now on keepalive frames are handled here, the liveness deadline
   * runs, and (if `keepaliveEveryMs` is given) this side sends its keepalive frame on a timer.
   * The dialer pings; an acceptor answers pings, and on snapshot connections also pongs on its own
   * timer because it stops reading while its consumer is behind.
   */
  establish(keepaliveEveryMs: number | null): void {
    if (this.isClosing) return;
    this.established = true;
    this.lastReceiveMs = performance.now();
    this.scheduleLivenessCheck(this.livenessTimeoutMs);
    if (keepaliveEveryMs !== null) {
      const type = this.side === 'dialer' ? FrameType.ping : FrameType.pong;
      const keepalive = encodeFrame(type);
      this.keepaliveTimer = setInterval(() => {
        if (!this.isClosing) this.socket.write(keepalive);
      }, keepaliveEveryMs);
    }
  }

  sendFrame(type: number, payload?: Uint8Array): boolean {
    return this.write(encodeFrame(type, payload));
  }

  /** Writes bytes that already hold whole frames; false means the caller should wait for drain. */
  write(bytes: Uint8Array): boolean {
    if (this.isClosing) return false;
    return this.socket.write(bytes);
  }

  /** Resolves once the socket's buffer has drained, or the connection is closing. */
  whenWritable(): Promise<void> {
    if (this.isClosing || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Stop reading (the consumer is behind). The liveness deadline is suspended meanwhile: the
   * silence is ours, not the peer's. */
  pauseReading(): void {
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    this.lastReceiveMs = performance.now();
    if (!this.isClosing) this.socket.resume();
  }

  /** Closes at once, even during a graceful end; buffered writes are discarded. */
  destroy(reason: string): void {
    if (this.closed || this.destroyed) return;
    this.destroyed = true;
    if (this.closingReason === null) this.closingReason = reason;
    this.logger.debug('closing connection', { remote: this.remoteAddress, peer: this.warnKey, reason });
    this.socket.destroy();
    this.wakeDrainWaiters();
  }

  /** Resolves once the socket has closed (immediately if it already has). */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closeListeners.push(() => resolve()));
  }

  /** Logs a rate-limited warning about what the remote did, then closes this connection. */
  violation(reason: string, fields: Record<string, unknown> = {}): void {
    if (this.isClosing) return;
    this.warnings.warn(this.warnKey, 'closing peer connection: protocol violation', { remote: this.remoteAddress, peer: this.warnKey, reason, ...fields });
    this.destroy(reason);
  }

  /** Sends what was written, then closes; cut after a short grace if the remote does not close. */
  end(reason: string): void {
    if (this.isClosing) return;
    this.closingReason = reason;
    this.clearTimers();
    this.socket.end();
    this.endTimer = setTimeout(() => this.socket.destroy(), GRACEFUL_END_MS);
    this.wakeDrainWaiters();
  }

  private onData(chunk: Buffer): void {
    this.lastReceiveMs = performance.now();
    if (this.isClosing) return;
    try {
      this.decoder.push(chunk);
      for (let frame = this.decoder.next(); frame !== null; frame = this.isClosing ? null : this.decoder.next()) {
        this.dispatch(frame.type, frame.payload);
      }
    } catch (error) {
      this.onFrameError(error);
    }
  }

  private dispatch(type: number, payload: Buffer): void {
    if (this.established && type === FrameType.ping) {
      if (this.side === 'acceptor') this.socket.write(encodeFrame(FrameType.pong));
      return;
    }
    if (this.established && type === FrameType.pong) return;
    this.handler(type, payload);
  }

  private onFrameError(error: unknown): void {
    if (error instanceof FrameTooLargeError) {
      this.violation('oversized frame', { announcedBytes: error.announcedBytes, maxFrameBytes: error.maxFrameBytes });
    } else if (error instanceof ProtocolError || error instanceof CodecError) {
      this.violation(error.message);
    } else {
      // A bug in a handler, not the peer's fault; still, only this connection pays for it.
      this.logger.error('frame handler failed; closing the connection', { remote: this.remoteAddress, peer: this.warnKey, error });
      this.destroy('frame handler failed');
    }
  }

  private scheduleLivenessCheck(delayMs: number): void {
    const boundedMs = Math.max(1, delayMs);
    this.livenessDueMs = performance.now() + boundedMs;
    this.livenessTimer = setTimeout(() => this.checkLiveness(false), boundedMs);
  }

  /**
   * One timer per connection, re-armed for the remaining time, instead of a reset per frame.
   * After a stall of our own event loop, timers run before the loop reads the sockets, so the peer
   * looks silent although its frames are waiting in the kernel: a late timer therefore defers its
   * verdict to a setImmediate, which runs after the loop has read them.
   */
  private checkLiveness(afterStall: boolean): void {
    this.livenessTimer = null;
    this.livenessRecheck = null;
    if (this.isClosing) return;
    if (this.readingPaused) {
      this.scheduleLivenessCheck(this.livenessTimeoutMs);
      return;
    }
    const silentMs = performance.now() - this.lastReceiveMs;
    if (silentMs >= this.livenessTimeoutMs) {
      if (!afterStall && performance.now() - this.livenessDueMs > STALL_MS) {
        this.livenessRecheck = setImmediate(() => this.checkLiveness(true));
        return;
      }
      this.warnings.warn(`${this.warnKey}:${this.side}:liveness`, 'peer connection is silent; closing it', { remote: this.remoteAddress, peer: this.warnKey, side: this.side, silentMs: Math.round(silentMs) });
      this.destroy(`no frame received for ${Math.round(silentMs)} ms`);
      return;
    }
    this.scheduleLivenessCheck(this.livenessTimeoutMs - silentMs);
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    this.wakeDrainWaiters();
    const reason = this.closingReason ?? (this.lastError !== null ? this.lastError.message : 'closed by the remote side');
    if (this.closingReason === null) this.closingReason = reason;
    for (const listener of this.closeListeners.splice(0)) safely(this.logger, 'close listener', () => listener(reason));
  }

  private clearTimers(): void {
    if (this.livenessTimer !== null) clearTimeout(this.livenessTimer);
    if (this.livenessRecheck !== null) clearImmediate(this.livenessRecheck);
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    if (this.endTimer !== null) clearTimeout(this.endTimer);
    this.livenessTimer = null;
    this.livenessRecheck = null;
    this.keepaliveTimer = null;
    this.endTimer = null;
  }

  private wakeDrainWaiters(): void {
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}

/** Runs a callback from an event handler; an exception is logged, never thrown into the emitter. */
export function safely(logger: Logger, what: string, callback: () => void): void {
  try {
    callback();
  } catch (error) {
    logger.error(`${what} threw`, { error });
  }
}

function describeRemote(socket: Socket): string {
  const host = socket.remoteAddress;
  const port = socket.remotePort;
  if (host === undefined) return 'unknown';
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
