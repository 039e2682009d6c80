// The API's operations on a node: validate, then propose here when this node leads or forward to
// the leader when it follows; serve reads locally, linearizable ones behind a ReadIndex barrier.

import type { ClientStamp, DeleteOutcome, HealthReport, KvBackend, KvRecord, ReadConsistency } from '../api/backend.js';
import { ApiError, isErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { KvCommand } from '../kvstore/commands.js';
import { validateKey, validateValue } from '../kvstore/limits.js';
import type { CommandResult } from '../kvstore/state-machine.js';
import { findMember } from '../raft/membership.js';
import type { NodeConfig } from './node-config.js';
import type { PeerClientPool } from './peer-client-pool.js';
import type { RaftRuntime } from './raft-runtime.js';
import { parseRpcRequest, type NodeStatusWithAddresses, type RpcRequest, type RpcResponse } from './rpc-protocol.js';

type WriteRequest = Extract<RpcRequest, { type: 'put' | 'delete' }>;

export class NodeBackend implements KvBackend {
  readonly maxValueBytes: number;

  constructor(
    private readonly runtime: RaftRuntime,
    private readonly config: NodeConfig,
    private readonly peers: PeerClientPool,
    private readonly logger: Logger,
  ) {
    this.maxValueBytes = config.maxValueBytes;
  }

  async put(key: string, value: string, stamp: ClientStamp | undefined): Promise<KvRecord> {
    this.checkKey(key);
    const valueProblem = validateValue(value, this.maxValueBytes);
    if (valueProblem) throw new ApiError(valueProblem.code, valueProblem.message);
    const result = await this.write(stamp ? { type: 'put', key, value, client: stamp } : { type: 'put', key, value });
    if (!('value' in result)) throw new ApiError('INTERNAL', 'A put answered with something else.');
    return result;
  }

  async delete(key: string, stamp: ClientStamp | undefined): Promise<DeleteOutcome> {
    this.checkKey(key);
    const result = await this.write(stamp ? { type: 'delete', key, client: stamp } : { type: 'delete', key });
    if (!('deleted' in result)) throw new ApiError('INTERNAL', 'A delete answered with something else.');
    return result;
  }

  async get(key: string, consistency: ReadConsistency, revision: number | undefined): Promise<KvRecord | null> {
    this.checkKey(key);
    if (consistency === 'linearizable') {
      await this.requireLeader();
      await this.runtime.linearizableBarrier(this.config.requestTimeoutMs);
    }
    return this.readLocal(key, revision);
  }

  async health(): Promise<HealthReport> {
    const status = this.runtime.status();
    const base = {
      keys: String(this.runtime.stateMachine.count()),
      nodeId: status.nodeId,
      state: status.state,
      term: status.term,
      leader: status.leader,
      commitIndex: status.commitIndex,
      appliedIndex: status.appliedIndex,
    };
    if (status.diskFull) return { healthy: false, body: { status: 'unhealthy', reason: 'disk full: writes are refused', ...base } };
    if (status.leader === 0) return { healthy: false, body: { status: 'unhealthy', reason: 'no leader is known', ...base } };
    return { healthy: true, body: { status: 'healthy', ...base } };
  }

  async clusterStatus(): Promise<unknown> {
    const self = this.statusWithAddresses();
    const others = await Promise.all(self.membership.members.filter((m) => m.id !== self.nodeId).map(async (member) => {
      try {
        const response = await this.peers.request(member.peerAddr, { type: 'status' }, 1000);
        return response.ok ? response.result : { nodeId: member.id, peerAddr: member.peerAddr, error: response.message };
      } catch (error) {
        return { nodeId: member.id, peerAddr: member.peerAddr, state: 'unreachable', error: (error as Error).message };
      }
    }));
    return { leader: self.leader, term: self.term, nodes: [self, ...others].sort((a, b) => (a as { nodeId: number }).nodeId - (b as { nodeId: number }).nodeId) };
  }

  /** Requests arriving on the peer port from followers, gateways and tools. */
  async handleRpc(body: unknown): Promise<RpcResponse> {
    const request = parseRpcRequest(body);
    if (request === null) return { ok: false, code: 'BAD_REQUEST', message: 'Malformed request.' };
    try {
      switch (request.type) {
        case 'status': return { ok: true, result: this.statusWithAddresses() };
        case 'get': {
          const record = await this.get(request.key, request.consistency, request.revision);
          return { ok: true, result: record ?? { found: false } };
        }
        case 'put':
        case 'delete': {
          // Forwarded writes are proposed here or refused: never forwarded twice.
          if (request.type === 'put') {
            this.checkKey(request.key);
            const problem = validateValue(request.value, this.maxValueBytes);
            if (problem) throw new ApiError(problem.code, problem.message);
          } else {
            this.checkKey(request.key);
          }
          if (this.runtime.node.role !== 'leader') {
            return { ok: false, code: 'NO_LEADER', message: 'This node is not the leader; the request was not proposed.', leaderId: this.runtime.node.leaderId };
          }
          return { ok: true, result: await this.proposeHere(request) };
        }
      }
    } catch (error) {
      if (error instanceof ApiError) return { ok: false, code: error.code, message: error.message };
      this.logger.error('request failed', { error });
      return { ok: false, code: 'INTERNAL', message: 'An internal error occurred.' };
    }
  }

  statusWithAddresses(): NodeStatusWithAddresses {
    return {
      ...this.runtime.status(),
      httpAddr: this.config.httpAdvertise,
      peerAddr: this.config.peerAdvertise,
      keys: this.runtime.stateMachine.count(),
    };
  }

  private checkKey(key: string): void {
    const problem = validateKey(key);
    if (problem) throw new ApiError(problem.code, problem.message);
  }

  private async requireLeader(): Promise<number> {
    const leader = await this.runtime.waitForLeader(this.config.electionTimeoutMsMax);
    if (leader === 0) throw new ApiError('NO_LEADER', 'No leader was elected in time; the request was not proposed.', 1);
    return leader;
  }

  /** Propose here if leading, else forward to the leader; follow one leader change in between. */
  private async write(request: WriteRequest): Promise<KvRecord | DeleteOutcome> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    for (;;) {
      const leader = await this.requireLeader();
      if (leader === this.config.nodeId) return this.proposeHere(request);
      const address = findMember(this.runtime.node.membership, leader)?.peerAddr;
      if (address === undefined) throw new ApiError('NO_LEADER', `Leader ${leader} is not in the membership; the request was not proposed.`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new ApiError('NO_LEADER', 'No leader accepted the request in time; it was not proposed.', 1);
      const response = await this.peers.request(address, request, remaining);
      if (response.ok) return response.result as KvRecord | DeleteOutcome;
      // "Not the leader" from the node we believed led: it was not proposed; try the new leader.
      if (response.code === 'NO_LEADER' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, this.config.tickMs));
        continue;
      }
      throw new ApiError(response.code, response.message);
    }
  }

  private async proposeHere(request: WriteRequest): Promise<KvRecord | DeleteOutcome> {
    const proposedAtMs = Date.now();
    const command: KvCommand = request.type === 'put'
      ? { v: 1, op: 'put', key: request.key, value: request.value, proposedAtMs, ...(request.client ? { client: request.client } : {}) }
      : { v: 1, op: 'delete', key: request.key, proposedAtMs, ...(request.client ? { client: request.client } : {}) };
    return toOutcome(await this.runtime.propose(command, this.config.requestTimeoutMs));
  }

  private readLocal(key: string, revision: number | undefined): KvRecord | null {
    try {
      const { kv, revision: storeRevision } = this.runtime.stateMachine.get(key, revision);
      if (kv === null) return null;
      return { ...kv, revision: storeRevision };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (isErrorCode(code)) throw new ApiError(code, (error as Error).message);
      throw error;
    }
  }
}

function toOutcome(result: CommandResult): KvRecord | DeleteOutcome {
  switch (result.kind) {
    case 'put': return { key: result.key, value: result.value, createRevision: result.createRevision, modRevision: result.modRevision, version: result.version, revision: result.revision };
    case 'delete': return { key: result.key, deleted: result.deleted, revision: result.revision };
    case 'error': throw new ApiError(isErrorCode(result.code) ? result.code : 'BAD_REQUEST', result.message);
    default: throw new ApiError('INTERNAL', `Unexpected result ${result.kind}.`);
  }
}
