// A request/response client of a node's peer port, for the gateway and tools (and for a member
// forwarding on behalf of its clients). One connection, many requests in flight, each matched to its
// answer by id and bounded by its own deadline. Errors carry a stable code, so callers decide on a
// retry by code, not by text.

import { type Logger, silentLogger } from '../common/logger.js';
import { decodeValue, encodeValue } from '../codec/raft-codec.js';
import type { NodeId } from '../raft/types.js';
import { checkClientResponse } from './client-frames.js';
import { type FrameConnection, ProtocolError } from './connection.js';
import { dial, type Dialing } from './dial.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameType } from './frame.js';
import { type Caller, DEFAULT_HANDSHAKE_TIMEOUT_MS, HandshakeRefusedError, helloFor } from './handshake.js';
import { WarnLimiter } from './warn-limiter.js';

export interface PeerClientOptions {
  /** Who is calling: 'client' (default) or a member id when a member forwards. */
  readonly from?: Caller;
  readonly handshakeTimeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly livenessTimeoutMs?: number;
  readonly maxFrameBytes?: number;
  /** Requests awaiting an answer; past it `request` fails at once with OVERLOADED. */
  readonly maxInFlight?: number;
  readonly logger?: Logger;
}

/**
 * CONNECT_FAILED: no connection (refused, unreachable, handshake deadline); nothing was sent.
 * REFUSED: the node refused the handshake (wrong cluster, say); nothing was sent.
 * OVERLOADED: too many requests in flight here; this one was not sent.
 * TIMEOUT: no answer within the deadline; the request may or may not have been acted on.
 * CLOSED: the connection closed before an answer; the request may or may not have been acted on.
 * REMOTE: the node's handler failed and said why.
 */
export type PeerClientErrorCode = 'CONNECT_FAILED' | 'REFUSED' | 'OVERLOADED' | 'TIMEOUT' | 'CLOSED' | 'REMOTE';

export class PeerClientError extends Error {
  override readonly name = 'PeerClientError';
  constructor(readonly code: PeerClientErrorCode, message: string) {
    super(message);
  }
}

interface Pending {
  readonly resolve: (body: unknown) => void;
  readonly reject: (error: PeerClientError) => void;
  readonly timer: NodeJS.Timeout;
}

export const DEFAULT_CLIENT_MAX_IN_FLIGHT = 1024;

export class PeerClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedReason: string | null = null;

  private constructor(private readonly connection: FrameConnection, readonly nodeId: NodeId, private readonly maxInFlight: number) {
    connection.onClose((reason) => this.onClosed(reason));
  }

  /** Dials `address` ("host:port") and completes the handshake as a client of cluster `clusterId`. */
  static async connect(address: string, clusterId: string, options: PeerClientOptions = {}): Promise<PeerClient> {
    const logger = (options.logger ?? silentLogger).child({ component: 'peer-client' });
    const pingIntervalMs = options.pingIntervalMs ?? 200;
    const made: { client?: PeerClient } = {};
    let dialing: Dialing;
    try {
      dialing = dial({
        address,
        hello: helloFor(clusterId, options.from ?? 'client', 'client'),
        expectedNodeId: null,
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
        maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        livenessTimeoutMs: options.livenessTimeoutMs ?? 1000,
        logger,
        warnings: new WarnLimiter(logger),
        warnKey: address,
        onEstablished: (connection, nodeId) => {
          const established = new PeerClient(connection, nodeId, options.maxInFlight ?? DEFAULT_CLIENT_MAX_IN_FLIGHT);
          made.client = established;
          connection.establish(pingIntervalMs);
          return (type, payload) => established.onFrame(type, payload);
        },
      });
    } catch (error) {
      throw new PeerClientError('CONNECT_FAILED', error instanceof Error ? error.message : String(error));
    }
    try {
      await dialing.established;
    } catch (error) {
      if (error instanceof HandshakeRefusedError) throw new PeerClientError('REFUSED', error.message);
      throw new PeerClientError('CONNECT_FAILED', `cannot connect to ${address}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (made.client === undefined) throw new PeerClientError('CONNECT_FAILED', 'handshake finished without a client');
    return made.client;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Requests awaiting an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends `body` and resolves with the node's answer, or rejects with a PeerClientError. */
  request(body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.closedReason !== null) return Promise.reject(new PeerClientError('CLOSED', `connection closed: ${this.closedReason}`));
    if (this.pending.size >= this.maxInFlight) return Promise.reject(new PeerClientError('OVERLOADED', `${this.maxInFlight} requests already in flight`));
    const id = this.nextId;
    this.nextId += 1;
    let payload: Uint8Array;
    try {
      payload = encodeValue({ id, body });
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PeerClientError('TIMEOUT', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.connection.sendFrame(FrameType.clientRequest, payload);
    });
  }

  /** Closes the connection; requests still in flight fail with CLOSED. Idempotent. */
  close(): void {
    this.connection.destroy('closed by the client');
    this.onClosed('closed by the client');
  }

  /** Resolves once the socket has closed. */
  whenClosed(): Promise<void> {
    return this.connection.whenClosed();
  }

  private onFrame(type: number, payload: Buffer): void {
    if (type !== FrameType.clientResponse) throw new ProtocolError(`frame type ${type} is not allowed on a client connection`);
    const response = checkClientResponse(decodeValue(payload));
    const pending = this.pending.get(response.id);
    // An answer after its deadline: the caller has moved on already.
    if (pending === undefined) return;
    this.pending.delete(response.id);
    clearTimeout(pending.timer);
    if (response.ok) pending.resolve(response.body);
    else pending.reject(new PeerClientError('REMOTE', response.error));
  }

  private onClosed(reason: string): void {
    if (this.closedReason === null) this.closedReason = reason;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new PeerClientError('CLOSED', `connection closed before an answer: ${reason}`));
    }
  }
}
