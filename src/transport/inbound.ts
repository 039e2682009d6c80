// The acceptor side of the peer port: counts and tracks every inbound connection, runs the
// handshake, and hands each established connection to the handler for its purpose. A new Raft
// connection from a member replaces its previous one, since each member keeps exactly one outbound
// Raft connection to us and the old one is dead or dying.
//
// Two separate bounds, so that strangers cannot lock members out. Connections that have not yet
// said hello (anyone can open those) have their own small budget and a short deadline; when the
// budget is full, a new connection evicts the oldest one still waiting, never the other way round, so
// a member's fresh connection always gets its chance to say hello (it does so at once). Established
// connections (a valid hello for this cluster) count against maxInboundConnections.

import type { Socket } from 'node:net';
import type { Logger } from '../common/logger.js';
import type { Message, NodeId } from '../raft/types.js';
import { type ClientRequestHandler, clientRequestServer, type InvalidTextAnswer } from './client-request-server.js';
import { FrameConnection, type FrameHandler } from './connection.js';
import { acceptHandshake, type Hello } from './handshake.js';
import { raftReceiver } from './raft-receiver.js';
import { type SnapshotHandler, snapshotReceiver } from './snapshot-receiver.js';
import type { WarnLimiter } from './warn-limiter.js';

/** Room for many members and gateways reconnecting at once, small enough to cost little. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 256;

export interface InboundContext {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly onMessage: (message: Message) => void;
  readonly onSnapshot: SnapshotHandler;
  readonly onClientRequest: ClientRequestHandler | undefined;
  readonly onInvalidClientText?: InvalidTextAnswer | undefined;
  /** Established connections; a connection accepted while this many are established is refused. */
  readonly maxInboundConnections: number;
  /** Connections still waiting for their hello; past it, the oldest waiting one is evicted. */
  readonly maxPendingHandshakes: number;
  /** How long an accepted connection may take to say hello. */
  readonly acceptHandshakeTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly livenessTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly snapshotHighWaterBytes: number;
  readonly logger: Logger;
  readonly warnings: WarnLimiter;
}

export class InboundConnections {
  private readonly open = new Set<FrameConnection>();
  /** The subset of `open` still waiting for a hello, oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<FrameConnection>();
  /** The subset of `open` past a successful hello. Counted apart from `open`: an evicted connection
   * is in neither set while its socket closes, so a flood cannot make it look established. */
  private readonly established = new Set<FrameConnection>();
  private readonly raftByMember = new Map<NodeId, FrameConnection>();

  constructor(private readonly context: InboundContext) {}

  get count(): number {
    return this.open.size;
  }

  /** Connections still waiting for their hello. */
  get pendingCount(): number {
    return this.pending.size;
  }

  get establishedCount(): number {
    return this.established.size;
  }

  accept(socket: Socket): void {
    const { context } = this;
    const remoteHost = socket.remoteAddress ?? 'unknown';
    if (this.establishedCount >= context.maxInboundConnections) {
      context.warnings.warn('inbound-limit', 'peer connection refused: too many inbound connections', { remote: `${remoteHost}:${socket.remotePort}`, limit: context.maxInboundConnections });
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    if (this.pending.size >= context.maxPendingHandshakes) this.evictOldestPending(remoteHost);
    const connection = new FrameConnection({
      socket,
      side: 'acceptor',
      maxFrameBytes: context.maxFrameBytes,
      livenessTimeoutMs: context.livenessTimeoutMs,
      logger: context.logger,
      warnings: context.warnings,
      warnKey: remoteHost,
    });
    this.open.add(connection);
    this.pending.add(connection);
    connection.onClose(() => {
      this.open.delete(connection);
      this.pending.delete(connection);
      this.established.delete(connection);
    });
    acceptHandshake({
      connection,
      policy: { selfId: context.selfId, clusterId: context.clusterId, servesClients: context.onClientRequest !== undefined },
      timeoutMs: context.acceptHandshakeTimeoutMs,
      warnings: context.warnings,
      onEstablished: (hello) => {
        this.pending.delete(connection);
        this.established.add(connection);
        return this.handlerFor(connection, hello);
      },
    });
    if (this.pending.size > context.maxPendingHandshakes) throw new Error(`invariant: ${this.pending.size} connections waiting for a hello, the bound is ${context.maxPendingHandshakes}`);
  }

  private evictOldestPending(remoteHost: string): void {
    const oldest = this.pending.values().next().value;
    if (oldest === undefined) return;
    // Removed here rather than on close, so the bound holds even before the socket has closed.
    this.pending.delete(oldest);
    this.context.warnings.warn('inbound-evict', 'peer connection dropped: too many connections waiting for a handshake, the oldest goes', { remote: oldest.remoteAddress, newcomer: remoteHost, limit: this.context.maxPendingHandshakes });
    oldest.destroy('evicted: too many connections waiting for a handshake');
  }

  /** Destroys every inbound connection and resolves once all have closed. */
  async closeAll(reason: string): Promise<void> {
    const closing = [...this.open].map((connection) => {
      connection.destroy(reason);
      return connection.whenClosed();
    });
    await Promise.all(closing);
  }

  private handlerFor(connection: FrameConnection, hello: Hello): FrameHandler {
    const { context } = this;
    const logger = context.logger;
    if (hello.purpose === 'client') {
      connection.establish(null);
      const handler = context.onClientRequest;
      if (handler === undefined) throw new Error('client connection accepted without a handler');
      return clientRequestServer({ connection, handler, logger, onInvalidText: context.onInvalidClientText });
    }
    // checkHello lets only members open raft and snapshot connections.
    const from = hello.from;
    if (from === 'client') throw new Error(`a client was accepted for purpose ${hello.purpose}`);
    if (hello.purpose === 'raft') {
      this.replaceRaftConnection(from, connection);
      connection.establish(null);
      logger.debug('inbound raft connection established', { from, remote: connection.remoteAddress });
      return raftReceiver({ selfId: context.selfId, from, onMessage: context.onMessage, logger });
    }
    // The snapshot receiver stops reading while its consumer is behind, so it cannot rely on
    // answering pings: it sends its own keepalive instead, and the sender keeps hearing from it.
    connection.establish(context.pingIntervalMs);
    return snapshotReceiver({ selfId: context.selfId, from, connection, onSnapshot: context.onSnapshot, highWaterBytes: context.snapshotHighWaterBytes, logger });
  }

  private replaceRaftConnection(from: NodeId, connection: FrameConnection): void {
    const previous = this.raftByMember.get(from);
    this.raftByMember.set(from, connection);
    connection.onClose(() => {
      if (this.raftByMember.get(from) === connection) this.raftByMember.delete(from);
    });
    if (previous !== undefined && previous !== connection) previous.destroy('replaced by a newer connection from the same member');
  }
}
