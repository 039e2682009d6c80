// Requests a client connection on the peer port may make: followers forward writes to the leader
// this way, and the gateway reaches nodes this way. Bodies are validated like any untrusted input.

import type { ClientStamp, DeleteOutcome, KvRecord, MemberChangeOutcome, MembersView, ReadConsistency, TransferOutcome } from '../api/backend.js';
import { isErrorCode, type ErrorCode } from '../common/errors.js';
import type { NodeStatus } from './raft-runtime.js';
import type { ReplicaHashReport } from './replica-hash-check.js';

export type RpcRequest =
  | { readonly type: 'put'; readonly key: string; readonly value: string; readonly client?: ClientStamp; readonly relay?: true }
  | { readonly type: 'delete'; readonly key: string; readonly client?: ClientStamp; readonly relay?: true }
  | { readonly type: 'get'; readonly key: string; readonly consistency: ReadConsistency; readonly revision?: number }
  | { readonly type: 'status' }
  | AdminRequest;

/** Membership and leadership operations: answered by the leader, refused (NO_LEADER) elsewhere,
 * except 'members', which any node answers with its own view. */
export type AdminRequest =
  | { readonly type: 'members' }
  | { readonly type: 'addMember'; readonly id: number; readonly peerAddr: string; readonly httpAddr: string; readonly force: boolean; readonly relay?: true }
  | { readonly type: 'removeMember'; readonly id: number; readonly force: boolean; readonly relay?: true }
  | { readonly type: 'promoteMember'; readonly id: number; readonly force: boolean; readonly relay?: true }
  | { readonly type: 'transferLeader'; readonly id: number | null; readonly relay?: true }
  /** From a leader to a member it just removed: "check whether you were removed" (the member asks
   * the others and trusts only a committed membership, never this message). */
  | { readonly type: 'removedNotice'; readonly id: number };

/** Requests that change something: a lost answer leaves their outcome unknown. */
export function changesState(request: RpcRequest): boolean {
  return request.type === 'put' || request.type === 'delete' || request.type === 'addMember'
    || request.type === 'removeMember' || request.type === 'promoteMember' || request.type === 'transferLeader';
}

/**
 * Requests only the leader carries out. By default a node that does not lead refuses them
 * (NO_LEADER), so a request forwarded by a follower is never forwarded again. A client that cannot
 * reach the leader (a gateway cut off from it) marks its request `relay`: the receiving node then
 * forwards it once, exactly as it forwards its own API's requests, without the mark.
 */
export type RelayableRequest = Extract<RpcRequest, { relay?: true }>;

export function isRelayable(request: RpcRequest): request is RelayableRequest {
  return changesState(request);
}

/** The same request marked for one relay by a node that does not lead. */
export function markedForRelay(request: RpcRequest): RpcRequest {
  return isRelayable(request) ? { ...request, relay: true } : request;
}

export interface NodeStatusWithAddresses extends NodeStatus {
  readonly httpAddr: string;
  readonly peerAddr: string;
  readonly keys: number;
  /** This node's recent replica hash checkpoints and any mismatch it found (replica-hash-check.ts). */
  readonly replicaHash?: ReplicaHashReport;
}

export type RpcResult = KvRecord | DeleteOutcome | { readonly found: false } | NodeStatusWithAddresses | MembersView | MemberChangeOutcome | TransferOutcome;

export type RpcResponse =
  | { readonly ok: true; readonly result: RpcResult }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string; readonly leaderId?: number };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseStamp(value: unknown): ClientStamp | undefined | null {
  if (value === undefined) return undefined;
  if (!isRecord(value)) return null;
  const { clientId, seq, ackedSeq } = value;
  if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 128) return null;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) return null;
  if (!Number.isSafeInteger(ackedSeq) || (ackedSeq as number) < 0 || (ackedSeq as number) >= (seq as number)) return null;
  return { clientId, seq: seq as number, ackedSeq: ackedSeq as number };
}

/** The request, or null when it is malformed. */
export function parseRpcRequest(body: unknown): RpcRequest | null {
  if (!isRecord(body)) return null;
  if (body.relay !== undefined && body.relay !== true) return null;
  const request = parseRequestBody(body);
  return request !== null && body.relay === true ? markedForRelay(request) : request;
}

function parseRequestBody(body: Record<string, unknown>): RpcRequest | null {
  switch (body.type) {
    case 'status': return { type: 'status' };
    case 'put': {
      const client = parseStamp(body.client);
      if (typeof body.key !== 'string' || typeof body.value !== 'string' || client === null) return null;
      return client ? { type: 'put', key: body.key, value: body.value, client } : { type: 'put', key: body.key, value: body.value };
    }
    case 'delete': {
      const client = parseStamp(body.client);
      if (typeof body.key !== 'string' || client === null) return null;
      return client ? { type: 'delete', key: body.key, client } : { type: 'delete', key: body.key };
    }
    case 'get': {
      if (typeof body.key !== 'string' || (body.consistency !== 'linearizable' && body.consistency !== 'stale')) return null;
      if (body.revision !== undefined && (!Number.isSafeInteger(body.revision) || (body.revision as number) < 1)) return null;
      return body.revision === undefined
        ? { type: 'get', key: body.key, consistency: body.consistency }
        : { type: 'get', key: body.key, consistency: body.consistency, revision: body.revision as number };
    }
    case 'members': return { type: 'members' };
    case 'addMember': {
      if (!isMemberId(body.id) || typeof body.peerAddr !== 'string' || typeof body.httpAddr !== 'string' || body.peerAddr.length > 300 || body.httpAddr.length > 300) return null;
      return { type: 'addMember', id: body.id, peerAddr: body.peerAddr, httpAddr: body.httpAddr, force: body.force === true };
    }
    case 'removeMember':
    case 'promoteMember': {
      if (!isMemberId(body.id)) return null;
      return { type: body.type, id: body.id, force: body.force === true };
    }
    case 'removedNotice': return isMemberId(body.id) ? { type: 'removedNotice', id: body.id } : null;
    case 'transferLeader': {
      if (body.id !== null && !isMemberId(body.id)) return null;
      return { type: 'transferLeader', id: body.id };
    }
    default: return null;
  }
}

function isMemberId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= 1_000_000;
}

/** The response, or null when it is malformed (a node speaking garbage). */
export function parseRpcResponse(body: unknown): RpcResponse | null {
  if (!isRecord(body) || typeof body.ok !== 'boolean') return null;
  if (body.ok) return isRecord(body.result) ? { ok: true, result: body.result as unknown as RpcResult } : null;
  if (!isErrorCode(body.code) || typeof body.message !== 'string') return null;
  return typeof body.leaderId === 'number'
    ? { ok: false, code: body.code, message: body.message, leaderId: body.leaderId }
    : { ok: false, code: body.code, message: body.message };
}
