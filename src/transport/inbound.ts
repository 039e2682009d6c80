// The acceptor side of the peer port: counts and tracks every inbound connection, runs the
// handshake, and hands each established connection to the handler for its purpose. Connections are
// bounded in number; a new Raft connection from a member replaces its previous one, since each member
// keeps exactly one outbound Raft connection to us and the old one is dead or dying.

import type { Socket } from 'node:net';
import type { Logger } from '../common/logger.js';
import type { Message, NodeId } from '../raft/types.js';
import { type ClientRequestHandler, clientRequestServer } from './client-request-server.js';
import { FrameConnection, type FrameHandler } from './connection.js';
import { acceptHandshake, type Hello } from './handshake.js';
import { raftReceiver } from './raft-receiver.js';
import { type SnapshotHandler, snapshotReceiver } from './snapshot-receiver.js';
import type { WarnLimiter } from './warn-limiter.js';

export interface InboundContext {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly onMessage: (message: Message) => void;
  readonly onSnapshot: SnapshotHandler;
  readonly onClientRequest: ClientRequestHandler | undefined;
  readonly maxInboundConnections: number;
  readonly maxFrameBytes: number;
  readonly livenessTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly handshakeTimeoutMs: number;
  readonly snapshotHighWaterBytes: number;
  readonly logger: Logger;
  readonly warnings: WarnLimiter;
}

export class InboundConnections {
  private readonly open = new Set<FrameConnection>();
  private readonly raftByMember = new Map<NodeId, FrameConnection>();

  constructor(private readonly context: InboundContext) {}

  get count(): number {
    return this.open.size;
  }

  accept(socket: Socket): void {
    const { context } = this;
    const remoteHost = socket.remoteAddress ?? 'unknown';
    if (this.open.size >= context.maxInboundConnections) {
      context.warnings.warn('inbound-limit', 'peer connection refused: too many inbound connections', { remote: `${remoteHost}:${socket.remotePort}`, limit: context.maxInboundConnections });
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
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
    connection.onClose(() => this.open.delete(connection));
    acceptHandshake({
      connection,
      policy: { selfId: context.selfId, clusterId: context.clusterId, servesClients: context.onClientRequest !== undefined },
      timeoutMs: context.handshakeTimeoutMs,
      warnings: context.warnings,
      onEstablished: (hello) => this.established(connection, hello),
    });
  }

  /** Destroys every inbound connection and resolves once all have closed. */
  async closeAll(reason: string): Promise<void> {
    const closing = [...this.open].map((connection) => {
      connection.destroy(reason);
      return connection.whenClosed();
    });
    await Promise.all(closing);
  }

  private established(connection: FrameConnection, hello: Hello): FrameHandler {
    const { context } = this;
    const logger = context.logger;
    if (hello.purpose === 'client') {
      connection.establish(null);
      const handler = context.onClientRequest;
      if (handler === undefined) throw new Error('client connection accepted without a handler');
      return clientRequestServer({ connection, handler, logger });
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
