// The API's operations on a node: validate, then propose here when this node leads or forward to
// the leader when it follows; serve reads locally, linearizable ones behind a ReadIndex barrier.

import type {
  ChangeOptions, ClientStamp, DeleteOutcome, HealthReport, KvBackend, KvRecord, MemberChangeOutcome, MembersView, NewMember,
  ReadConsistency, StreamBody, TransferOutcome,
} from '../api/backend.js';
import { ApiError, isErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { KvCommand } from '../kvstore/commands.js';
import { validateKey, validateValue } from '../kvstore/limits.js';
import type { CommandResult } from '../kvstore/state-machine.js';
import { findMember } from '../raft/membership.js';
import { backupChunks, type BackupMeta } from './backup.js';
import type { ClusterAdmin } from './cluster-admin.js';
import type { NodeConfig } from './node-config.js';
import type { PeerClientPool } from './peer-client-pool.js';
import { NotLeaderError, type RaftRuntime } from './raft-runtime.js';

/** One forwarding attempt of a stamped write: a paused or cut-off leader must not take the whole
 * request's time when a new leader may be elected meanwhile. */
const FORWARD_ATTEMPT_MS = 1500;

/** Statuses whose codes say a request was definitely not proposed (503, 429, 507). */
const NOT_PROPOSED_STATUSES = new Set([503, 429, 507]);
import { parseRpcRequest, type AdminRequest, type NodeStatusWithAddresses, type RpcRequest, type RpcResponse, type RpcResult } from './rpc-protocol.js';

type WriteRequest = Extract<RpcRequest, { type: 'put' | 'delete' }>;
type AdminChange = Exclude<AdminRequest, { type: 'members' | 'removedNotice' }>;

export class NodeBackend implements KvBackend {
  readonly maxValueBytes: number;

  constructor(
    private readonly runtime: RaftRuntime,
    private readonly config: NodeConfig,
    private readonly peers: PeerClientPool,
    private readonly logger: Logger,
    private readonly admin: ClusterAdmin,
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
    if (consistency === 'linearizable') await this.readBarrier();
    return this.readLocal(key, revision);
  }

  /**
   * A linearizable read (or a backup) waits within its request deadline for a leader to be known,
   * then for a ReadIndex barrier in the time left: a node just started, or mid-election, answers a
   * little later instead of refusing a read it could serve.
   */
  private async readBarrier(): Promise<void> {
    const deadline = performance.now() + this.config.requestTimeoutMs;
    const leader = await this.runtime.waitForLeader(this.config.requestTimeoutMs);
    if (leader === 0) throw new ApiError('NO_LEADER', 'No leader was elected in time; the read was not served.', 1);
    await this.runtime.linearizableBarrier(Math.max(1, deadline - performance.now()));
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
    if (this.runtime.removed !== null) return { healthy: false, body: { status: 'unhealthy', reason: 'this node was removed from the cluster', ...base } };
    if (status.diskFull) return { healthy: false, body: { status: 'unhealthy', reason: 'disk full: writes are refused', ...base } };
    const hashCheck = this.runtime.storageUpkeep.hashCheck;
    if (hashCheck.unhealthy) return { healthy: false, body: { status: 'unhealthy', reason: 'ALARM: replica state hash mismatch', alarms: hashCheck.alarms, ...base } };
    if (status.leader === 0) return { healthy: false, body: { status: 'unhealthy', reason: 'no leader is known', ...base } };
    // A learner never campaigns, so it keeps naming a leader that died: judge by what it hears.
    const silenceMs = this.runtime.silenceMs(status.leader);
    if (status.leader !== status.nodeId && silenceMs > 2 * this.config.electionTimeoutMsMax) {
      return { healthy: false, body: { status: 'unhealthy', reason: `leader ${status.leader} has not been heard from for ${Number.isFinite(silenceMs) ? Math.round(silenceMs) : 'ever'} ms`, ...base } };
    }
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
          if (request.relay === true) {
            // A client that cannot reach the leader asked this node to forward, once, like its own API.
            const result = request.type === 'put' ? await this.put(request.key, request.value, request.client) : await this.delete(request.key, request.client);
            return { ok: true, result };
          }
          // Forwarded writes are proposed here or refused: never forwarded twice.
          if (request.type === 'put') {
            this.checkKey(request.key);
            const problem = validateValue(request.value, this.maxValueBytes);
            if (problem) throw new ApiError(problem.code, problem.message);
          } else {
            this.checkKey(request.key);
          }
          await this.settleTransfer(Date.now() + this.config.requestTimeoutMs);
          if (this.runtime.node.role !== 'leader') {
            return { ok: false, code: 'NO_LEADER', message: 'This node is not the leader; the request was not proposed.', leaderId: this.runtime.node.leaderId };
          }
          return { ok: true, result: await this.proposeHere(request) };
        }
        case 'members': return { ok: true, result: this.admin.view() };
        case 'removedNotice': {
          this.admin.removalNoticed(request.id);
          return { ok: true, result: this.statusWithAddresses() };
        }
        case 'addMember':
        case 'removeMember':
        case 'promoteMember':
        case 'transferLeader': {
          if (request.relay === true) {
            const { relay: _relay, ...change } = request;
            return { ok: true, result: await this.routeAdmin(change) };
          }
          // Forwarded member operations are carried out here or refused: never forwarded twice.
          if (this.runtime.node.role !== 'leader') {
            return { ok: false, code: 'NO_LEADER', message: 'This node is not the leader; nothing was changed.', leaderId: this.runtime.node.leaderId };
          }
          return { ok: true, result: await this.adminHere(request) };
        }
      }
    } catch (error) {
      if (error instanceof NotLeaderError) return { ok: false, code: 'NO_LEADER', message: error.message, leaderId: this.runtime.node.leaderId };
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
      replicaHash: this.runtime.storageUpkeep.hashCheck.report(),
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
    const attempt = { mayHaveBeenProposed: false };
    try {
      return await this.writeAttempts(request, attempt);
    } catch (error) {
      // Once an attempt may have been proposed, no later failure may claim the write was not
      // applied: "not proposed" answers become OUTCOME_UNKNOWN (the client retries with its stamp).
      if (attempt.mayHaveBeenProposed && error instanceof ApiError && error.code !== 'OUTCOME_UNKNOWN' && NOT_PROPOSED_STATUSES.has(error.status)) {
        throw new ApiError('OUTCOME_UNKNOWN', 'An earlier attempt may have been applied; retry with the same client id and sequence number.');
      }
      throw error;
    }
  }

  private async writeAttempts(request: WriteRequest, attempt: { mayHaveBeenProposed: boolean }): Promise<KvRecord | DeleteOutcome> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    for (;;) {
      const leader = await this.requireLeader();
      if (leader === this.config.nodeId) {
        // A leader handing over refuses proposals: hold the request until the new leader is known.
        await this.settleTransfer(deadline);
        if (this.runtime.node.role !== 'leader') {
          await this.waitForOtherLeader(deadline);
          continue;
        }
        try {
          return await this.proposeHere(request);
        } catch (error) {
          if (!(error instanceof NotLeaderError) || Date.now() >= deadline) throw error;
          await this.waitForOtherLeader(deadline);
          continue;
        }
      }
      const address = findMember(this.runtime.node.membership, leader)?.peerAddr;
      if (address === undefined) throw new ApiError('NO_LEADER', `Leader ${leader} is not in the membership; the request was not proposed.`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new ApiError('NO_LEADER', 'No leader accepted the request in time; it was not proposed.', 1);
      // A stamped write may be sent again under the same stamp (the state machine applies it once),
      // so it gets short attempts and follows the leader; an unstamped one is sent exactly once.
      const stamped = request.client !== undefined;
      let response: RpcResponse;
      try {
        response = await this.peers.request(address, request, stamped ? Math.min(remaining, FORWARD_ATTEMPT_MS) : remaining);
      } catch (error) {
        if (error instanceof ApiError && error.code === 'OUTCOME_UNKNOWN') attempt.mayHaveBeenProposed = true;
        const retriable = error instanceof ApiError && (error.code === 'NO_LEADER' || (error.code === 'OUTCOME_UNKNOWN' && stamped));
        if (!retriable || Date.now() >= deadline) throw error;
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
        continue;
      }
      if (response.ok) return response.result as KvRecord | DeleteOutcome;
      // "Not the leader" from the node we believed led: it was not proposed; try the new leader.
      if (response.code === 'NO_LEADER' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, this.config.tickMs));
        continue;
      }
      throw new ApiError(response.code, response.message);
    }
  }

  /** While this node leads and hands leadership over, wait (a transfer takes about one round trip). */
  private async settleTransfer(deadline: number): Promise<void> {
    while (this.runtime.node.role === 'leader' && this.runtime.node.transferee !== 0 && Date.now() < deadline) {
      await sleep(Math.min(this.config.tickMs, 5));
    }
  }

  /** After this node stopped leading: until another leader is known (or the deadline). */
  private async waitForOtherLeader(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      const leader = this.runtime.node.leaderId;
      if (leader !== 0 && leader !== this.config.nodeId) return;
      if (this.runtime.node.role === 'leader' && this.runtime.node.transferee === 0) return;
      await sleep(Math.min(this.config.tickMs, 5));
    }
  }

  // ---- Cluster administration ------------------------------------------------------------------

  async members(): Promise<MembersView> {
    const node = this.runtime.node;
    if (node.role !== 'leader' && node.leaderId !== 0) {
      // The leader's view has each member's progress; a node's own view is the fallback.
      const address = findMember(node.membership, node.leaderId)?.peerAddr;
      if (address !== undefined) {
        try {
          const response = await this.peers.request(address, { type: 'members' }, Math.min(1000, this.config.requestTimeoutMs));
          if (response.ok && (response.result as MembersView).view === 'leader') return response.result as MembersView;
        } catch {
          // fall back to the local view
        }
      }
    }
    return this.admin.view();
  }

  async addMember(member: NewMember, options: ChangeOptions): Promise<MemberChangeOutcome> {
    return (await this.routeAdmin({ type: 'addMember', id: member.id, peerAddr: member.peerAddr, httpAddr: member.httpAddr, force: options.force })) as MemberChangeOutcome;
  }

  async removeMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome> {
    return (await this.routeAdmin({ type: 'removeMember', id, force: options.force })) as MemberChangeOutcome;
  }

  async promoteMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome> {
    return (await this.routeAdmin({ type: 'promoteMember', id, force: options.force })) as MemberChangeOutcome;
  }

  async transferLeader(id: number | null): Promise<TransferOutcome> {
    return (await this.routeAdmin({ type: 'transferLeader', id })) as TransferOutcome;
  }

  /** A backup of this node's state machine that holds at least every write acknowledged before
   * the request (a ReadIndex barrier first), streamed from one consistent read view. */
  async snapshot(): Promise<StreamBody> {
    await this.readBarrier();
    const exported = this.runtime.stateMachine.exportSnapshot();
    const node = this.runtime.node;
    const meta: BackupMeta = {
      format: 'raft-kv-backup',
      clusterId: this.admin.clusterId,
      nodeId: this.config.nodeId,
      index: exported.appliedIndex,
      term: node.termAt(exported.appliedIndex) ?? node.term,
      revision: exported.revision,
      membership: node.membership,
      createdAt: new Date().toISOString(),
    };
    this.logger.info('backup streaming', { index: meta.index, revision: meta.revision, term: meta.term });
    return { contentType: 'application/octet-stream', fileName: `raft-kv-${this.admin.clusterId}-${meta.index}.backup`, chunks: backupChunks(meta, exported.chunks) };
  }

  /** Carry out a member operation on the leader: here when this node leads, else forwarded. */
  private async routeAdmin(request: AdminChange): Promise<RpcResult> {
    const deadline = Date.now() + 2 * this.config.requestTimeoutMs;
    for (;;) {
      const leader = await this.requireLeader();
      if (leader === this.config.nodeId) {
        try {
          return await this.adminHere(request);
        } catch (error) {
          // The leader handed over (removing itself, say): take the request to the new leader.
          if (!(error instanceof NotLeaderError) || Date.now() >= deadline) throw error;
          await this.waitForOtherLeader(deadline);
          continue;
        }
      }
      const address = findMember(this.runtime.node.membership, leader)?.peerAddr;
      if (address === undefined) throw new ApiError('NO_LEADER', `Leader ${leader} is not in the membership; nothing was changed.`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new ApiError('NO_LEADER', 'No leader accepted the request in time; nothing was changed.', 1);
      const response = await this.peers.request(address, request, remaining);
      if (response.ok) return response.result;
      if (response.code === 'NO_LEADER' && Date.now() < deadline) {
        await sleep(this.config.tickMs);
        continue;
      }
      throw new ApiError(response.code, response.message);
    }
  }

  private adminHere(request: AdminChange): Promise<RpcResult> {
    switch (request.type) {
      case 'addMember': return this.admin.addLearner({ id: request.id, peerAddr: request.peerAddr, httpAddr: request.httpAddr });
      case 'removeMember': return this.admin.remove(request.id, request.force);
      case 'promoteMember': return this.admin.promote(request.id, request.force);
      case 'transferLeader': return this.admin.transfer(request.id);
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function toOutcome(result: CommandResult): KvRecord | DeleteOutcome {
  switch (result.kind) {
    case 'put': return { key: result.key, value: result.value, createRevision: result.createRevision, modRevision: result.modRevision, version: result.version, revision: result.revision };
    case 'delete': return { key: result.key, deleted: result.deleted, revision: result.revision };
    case 'error': throw new ApiError(isErrorCode(result.code) ? result.code : 'BAD_REQUEST', result.message);
    default: throw new ApiError('INTERNAL', `Unexpected result ${result.kind}.`);
  }
}
