// The first frame on every connection comes from the dialer and says who is calling, for which
// cluster, with which protocol, and what for. The acceptor answers `{ ok: true, nodeId }` or
// `{ ok: false, reason }` and closes. Refusing here, before any Raft message is read, is what keeps a
// node of another cluster (or a node that reuses our id) from ever reaching the core; the warning
// names the reason and the remote address, because that is what an operator must fix.

import { CodecError, decodeValue, encodeValue } from '../codec/raft-codec.js';
import type { NodeId } from '../raft/types.js';
import { type FrameConnection, type FrameHandler, ProtocolError } from './connection.js';
import { FrameType } from './frame.js';
import type { WarnLimiter } from './warn-limiter.js';

export const HANDSHAKE_MAGIC = 'raft-kv';
export const PROTOCOL_VERSION = 1;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** The acceptor's deadline for the hello: a dialer sends it at once, a stranger need not be waited for. */
export const DEFAULT_ACCEPT_HANDSHAKE_TIMEOUT_MS = 2000;

/** What a connection is for: Raft messages, one snapshot, or request/response for gateways and tools. */
export type Purpose = 'raft' | 'snapshot' | 'client';
/** A member id, or 'client' for a gateway or a tool that is not a member. */
export type Caller = NodeId | 'client';

export interface Hello {
  readonly magic: typeof HANDSHAKE_MAGIC;
  readonly protocolVersion: typeof PROTOCOL_VERSION;
  readonly clusterId: string;
  readonly from: Caller;
  readonly purpose: Purpose;
}

export type HelloReply = { readonly ok: true; readonly nodeId: NodeId } | { readonly ok: false; readonly reason: string };

/** What the acceptor accepts. */
export interface HelloPolicy {
  readonly selfId: NodeId;
  readonly clusterId: string;
  /** False when the node has no client request handler: 'client' connections are refused. */
  readonly servesClients: boolean;
}

export type HelloCheck = { readonly ok: true; readonly hello: Hello } | { readonly ok: false; readonly reason: string };

const PURPOSES: readonly string[] = ['raft', 'snapshot', 'client'] satisfies readonly Purpose[];

function isPurpose(value: unknown): value is Purpose {
  return typeof value === 'string' && PURPOSES.includes(value);
}

export function helloFor(clusterId: string, from: Caller, purpose: Purpose): Hello {
  return { magic: HANDSHAKE_MAGIC, protocolVersion: PROTOCOL_VERSION, clusterId, from, purpose };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isMemberId(value: unknown): value is NodeId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/** Pure: decides whether a decoded hello is acceptable, and if not, says why in one sentence. */
export function checkHello(value: unknown, policy: HelloPolicy): HelloCheck {
  if (!isRecord(value)) return { ok: false, reason: 'the handshake is not a record' };
  if (value.magic !== HANDSHAKE_MAGIC) return { ok: false, reason: `wrong magic ${JSON.stringify(value.magic)}: not a raft-kv peer` };
  if (value.protocolVersion !== PROTOCOL_VERSION) return { ok: false, reason: `unsupported protocol version ${JSON.stringify(value.protocolVersion)} (this node speaks ${PROTOCOL_VERSION})` };
  if (typeof value.clusterId !== 'string') return { ok: false, reason: 'the cluster id is not a string' };
  if (value.clusterId !== policy.clusterId) return { ok: false, reason: `cluster id mismatch: the caller belongs to "${value.clusterId}", this node to "${policy.clusterId}"` };
  const from = value.from;
  if (from !== 'client' && !isMemberId(from)) return { ok: false, reason: `"from" is neither a member id (an integer from 1) nor "client": ${JSON.stringify(from)}` };
  if (from === policy.selfId) return { ok: false, reason: `"from" is this node's own id ${policy.selfId}: a node dialing itself, or two members sharing an id` };
  const purpose = value.purpose;
  if (!isPurpose(purpose)) return { ok: false, reason: `unknown purpose ${JSON.stringify(purpose)}` };
  if (from === 'client' && purpose !== 'client') return { ok: false, reason: `a client may only open connections of purpose "client", not "${purpose}"` };
  if (purpose === 'client' && !policy.servesClients) return { ok: false, reason: 'this node serves no client requests on its peer port' };
  return { ok: true, hello: helloFor(policy.clusterId, from, purpose) };
}

/** Pure: validates the acceptor's answer; throws CodecError if it is malformed. */
export function checkHelloReply(value: unknown): HelloReply {
  if (!isRecord(value)) throw new CodecError('the handshake reply is not a record');
  if (value.ok === true) {
    if (!isMemberId(value.nodeId)) throw new CodecError('the handshake reply has no valid node id');
    return { ok: true, nodeId: value.nodeId };
  }
  if (value.ok === false) return { ok: false, reason: typeof value.reason === 'string' ? value.reason : 'no reason given' };
  throw new CodecError('the handshake reply has no ok field');
}

/** The acceptor refused us; `reason` is its sentence. */
export class HandshakeRefusedError extends Error {
  override readonly name = 'HandshakeRefusedError';
  constructor(readonly reason: string) {
    super(`handshake refused: ${reason}`);
  }
}

export interface DialHandshakeOptions {
  readonly connection: FrameConnection;
  readonly hello: Hello;
  /** The member we meant to reach; a different node at that address is treated as a failure. */
  readonly expectedNodeId: NodeId | null;
  readonly timeoutMs: number;
  /** Returns the handler for the established connection. Called synchronously on success, so a
   * frame that arrives in the same read as the reply is not missed. */
  readonly onEstablished: (nodeId: NodeId) => FrameHandler;
}

/** Dialer side: sends the hello (the socket buffers it until connected), waits for the reply. The
 * deadline covers the TCP connect as well, so a black-holed address fails in `timeoutMs`. */
export function dialHandshake(options: DialHandshakeOptions): Promise<NodeId> {
  const { connection } = options;
  return new Promise<NodeId>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(() => {
      fail(new Error(`handshake not answered within ${options.timeoutMs} ms`));
      connection.destroy('handshake timed out');
    }, options.timeoutMs);
    connection.onClose((reason) => fail(new Error(`connection closed during the handshake: ${reason}`)));
    connection.setHandler((type, payload) => {
      if (type !== FrameType.helloReply) throw new ProtocolError(`expected a handshake reply, got frame type ${type}`);
      const reply = checkHelloReply(decodeValue(payload));
      if (!reply.ok) {
        fail(new HandshakeRefusedError(reply.reason));
        connection.destroy('handshake refused');
        return;
      }
      if (options.expectedNodeId !== null && reply.nodeId !== options.expectedNodeId) {
        fail(new Error(`expected member ${options.expectedNodeId} at this address, found member ${reply.nodeId}`));
        connection.destroy('wrong member at this address');
        return;
      }
      let handler: FrameHandler;
      try {
        handler = options.onEstablished(reply.nodeId);
      } catch (error) {
        fail(error instanceof Error ? error : new Error(String(error)));
        connection.destroy('not wanted after the handshake');
        return;
      }
      settled = true;
      clearTimeout(timer);
      connection.setHandler(handler);
      resolve(reply.nodeId);
    });
    connection.sendFrame(FrameType.hello, encodeValue(options.hello));
  });
}

export interface AcceptHandshakeOptions {
  readonly connection: FrameConnection;
  readonly policy: HelloPolicy;
  readonly timeoutMs: number;
  readonly warnings: WarnLimiter;
  /** Returns the handler for the established connection (called synchronously, see above). */
  readonly onEstablished: (hello: Hello) => FrameHandler;
}

/** Acceptor side: the first frame must be an acceptable hello within the deadline. */
export function acceptHandshake(options: AcceptHandshakeOptions): void {
  const { connection, warnings } = options;
  const timer = setTimeout(() => {
    warnings.warn(`handshake:${connection.warnKey}`, 'peer connection refused: no handshake before the deadline', { remote: connection.remoteAddress, timeoutMs: options.timeoutMs });
    connection.destroy('handshake timed out');
  }, options.timeoutMs);
  connection.onClose(() => clearTimeout(timer));
  connection.setHandler((type, payload) => {
    if (type !== FrameType.hello) throw new ProtocolError(`expected a handshake, got frame type ${type}`);
    clearTimeout(timer);
    const check = checkHello(decodeValue(payload), options.policy);
    if (!check.ok) {
      // Limited per address and reason: a misconfigured node redialing every second logs once per
      // interval, yet a second, different problem from the same host is not hidden behind it.
      warnings.warn(`handshake:${connection.warnKey}:${check.reason}`, 'peer connection refused', { remote: connection.remoteAddress, reason: check.reason });
      connection.sendFrame(FrameType.helloReply, encodeValue({ ok: false, reason: check.reason }));
      connection.end('handshake refused');
      return;
    }
    connection.warnKey = check.hello.from === 'client' ? `client@${connection.warnKey}` : `member ${check.hello.from}`;
    connection.sendFrame(FrameType.helloReply, encodeValue({ ok: true, nodeId: options.policy.selfId }));
    connection.setHandler(options.onEstablished(check.hello));
  });
}
