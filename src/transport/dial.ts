// Opening an outbound connection: TCP connect plus the handshake, under one deadline. Shared by
// the Raft links, the snapshot sender and PeerClient, so all three dial, name and refuse alike.

import { connect } from 'node:net';
import type { Logger } from '../common/logger.js';
import type { NodeId } from '../raft/types.js';
import { parseHostPort } from './address.js';
import { FrameConnection, type FrameHandler } from './connection.js';
import { dialHandshake, type Hello } from './handshake.js';
import type { WarnLimiter } from './warn-limiter.js';

export interface DialOptions {
  readonly address: string;
  readonly hello: Hello;
  readonly expectedNodeId: NodeId | null;
  readonly handshakeTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly livenessTimeoutMs: number;
  readonly logger: Logger;
  readonly warnings: WarnLimiter;
  readonly warnKey: string;
  /** Installs the established connection's handler; see DialHandshakeOptions.onEstablished. */
  readonly onEstablished: (connection: FrameConnection, nodeId: NodeId) => FrameHandler;
}

export interface Dialing {
  /** Available at once, so the caller can destroy it while the handshake is still running. */
  readonly connection: FrameConnection;
  /** Resolves with the acceptor's node id; rejects (and the connection is closed) on any failure. */
  readonly established: Promise<NodeId>;
}

/** Throws a RangeError synchronously if the address is not host:port. */
export function dial(options: DialOptions): Dialing {
  const { host, port } = parseHostPort(options.address);
  const socket = connect({ host, port });
  const connection = new FrameConnection({
    socket,
    side: 'dialer',
    maxFrameBytes: options.maxFrameBytes,
    livenessTimeoutMs: options.livenessTimeoutMs,
    logger: options.logger,
    warnings: options.warnings,
    warnKey: options.warnKey,
    remoteLabel: options.address,
  });
  const established = dialHandshake({
    connection,
    hello: options.hello,
    expectedNodeId: options.expectedNodeId,
    timeoutMs: options.handshakeTimeoutMs,
    onEstablished: (nodeId) => options.onEstablished(connection, nodeId),
  });
  established.catch(() => connection.destroy('handshake failed'));
  return { connection, established };
}
