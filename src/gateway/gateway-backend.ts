// The stateless gateway's view of the cluster: find the leader through the nodes' peer ports,
// forward, follow leader changes, and hold requests through an election up to a deadline. Writes
// carry this gateway's client id and a sequence number, so a retry after a failover is applied once.

import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type {
  ChangeOptions, ClientStamp, DeleteOutcome, HealthReport, KvBackend, KvRecord, MemberChangeOutcome, MembersView, NewMember,
  ReadConsistency, StreamBody, TransferOutcome,
} from '../api/backend.js';
import { ApiError, isErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { validateKey, validateValue } from '../kvstore/limits.js';
import type { PeerClientPool } from '../server/peer-client-pool.js';
import { markedForRelay, type NodeStatusWithAddresses, type RpcRequest, type RpcResponse, type RpcResult } from '../server/rpc-protocol.js';

/** How long one forwarded attempt may wait before the gateway looks for the leader again. */
const ATTEMPT_TIMEOUT_MS = 1500;
/** How long the gateway keeps sending through a follower (when it cannot reach the leader itself)
 * before it asks again whether the leader has become reachable. */
const FORWARDER_ROUTE_MS = 3000;

/**
 * Where requests that need the leader go: the leader itself, or, when the gateway cannot reach the
 * leader but reaches a follower that knows it, that follower, which forwards (writes, linearizable
 * reads and member operations all work through any member).
 */
interface LeaderRoute {
  readonly address: string;
  readonly viaFollower: boolean;
  /** For a route through a follower: when to look for a direct way to the leader again. */
  readonly recheckAt: number;
}

export interface GatewayBackendOptions {
  readonly seedAddresses: readonly string[];
  readonly requestTimeoutMs: number;
  readonly maxValueBytes: number;
  /** Pause between attempts while the cluster has no leader. */
  readonly retryIntervalMs?: number;
}

export class GatewayBackend implements KvBackend {
  readonly maxValueBytes: number;
  private readonly clientId = `gw-${randomUUID()}`;
  private nextSeq = 1;
  private readonly inFlightSeqs = new Set<number>();
  private route: LeaderRoute | null = null;
  private knownAddresses: string[];
  private staleReadCursor = 0;

  constructor(private readonly peers: PeerClientPool, private readonly options: GatewayBackendOptions, private readonly logger: Logger) {
    this.maxValueBytes = options.maxValueBytes;
    this.knownAddresses = [...options.seedAddresses];
  }

  async put(key: string, value: string, stamp: ClientStamp | undefined): Promise<KvRecord> {
    checkKey(key);
    // Checked here as on a node: a lone surrogate would not survive the peer protocol's encoding.
    const problem = validateValue(value, this.maxValueBytes);
    if (problem) throw new ApiError(problem.code, problem.message);
    return this.write({ type: 'put', key, value }, stamp) as Promise<KvRecord>;
  }

  async delete(key: string, stamp: ClientStamp | undefined): Promise<DeleteOutcome> {
    checkKey(key);
    return this.write({ type: 'delete', key }, stamp) as Promise<DeleteOutcome>;
  }

  async get(key: string, consistency: ReadConsistency, revision: number | undefined): Promise<KvRecord | null> {
    checkKey(key);
    const request: RpcRequest = revision === undefined ? { type: 'get', key, consistency } : { type: 'get', key, consistency, revision };
    const result = await this.withRetries(request, consistency === 'stale' ? () => this.anyAddress() : () => this.findLeader());
    return 'found' in result ? null : (result as KvRecord);
  }

  async health(): Promise<HealthReport> {
    try {
      const address = await this.findLeader(Date.now() + Math.min(this.options.requestTimeoutMs, 2000));
      const response = await this.peers.request(address, { type: 'status' }, 1000);
      if (response.ok) {
        const status = response.result as NodeStatusWithAddresses;
        // `route`: whether the gateway reaches the leader itself or goes through a follower (`via`).
        const route = this.route?.viaFollower === true && this.route.address === address ? { route: 'follower', via: status.nodeId } : { route: 'leader' };
        return { healthy: true, body: { status: 'healthy', keys: String(status.keys), leader: status.leader, term: status.term, commitIndex: status.commitIndex, appliedIndex: status.appliedIndex, gateway: true, ...route } };
      }
      return { healthy: false, body: { status: 'unhealthy', reason: response.message, gateway: true } };
    } catch (error) {
      return { healthy: false, body: { status: 'unhealthy', reason: (error as Error).message, gateway: true } };
    }
  }

  async clusterStatus(): Promise<unknown> {
    const nodes = await Promise.all(this.knownAddresses.map(async (address) => {
      try {
        const response = await this.peers.request(address, { type: 'status' }, 1000);
        return response.ok ? response.result : { peerAddr: address, error: response.message };
      } catch (error) {
        return { peerAddr: address, state: 'unreachable', error: (error as Error).message };
      }
    }));
    const leader = nodes.find((node) => (node as { state?: string }).state === 'leader') as NodeStatusWithAddresses | undefined;
    return { leader: leader?.nodeId ?? 0, term: leader?.term ?? 0, nodes };
  }

  async members(): Promise<MembersView> {
    return (await this.withRetries({ type: 'members' }, () => this.findLeader())) as MembersView;
  }

  async addMember(member: NewMember, options: ChangeOptions): Promise<MemberChangeOutcome> {
    return (await this.withRetries({ type: 'addMember', id: member.id, peerAddr: member.peerAddr, httpAddr: member.httpAddr, force: options.force }, () => this.findLeader())) as MemberChangeOutcome;
  }

  async removeMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome> {
    return (await this.withRetries({ type: 'removeMember', id, force: options.force }, () => this.findLeader())) as MemberChangeOutcome;
  }

  async promoteMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome> {
    return (await this.withRetries({ type: 'promoteMember', id, force: options.force }, () => this.findLeader())) as MemberChangeOutcome;
  }

  async transferLeader(id: number | null): Promise<TransferOutcome> {
    return (await this.withRetries({ type: 'transferLeader', id }, () => this.findLeader())) as TransferOutcome;
  }

  /** Backups are streamed by a node's own API: proxied from the leader's advertised HTTP address. */
  async snapshot(): Promise<StreamBody> {
    const address = await this.findLeader();
    const response = await this.peers.request(address, { type: 'status' }, 1000);
    const httpAddr = response.ok ? (response.result as NodeStatusWithAddresses).httpAddr : '';
    if (httpAddr === '') throw new ApiError('NO_LEADER', 'The leader\'s HTTP address is not known; ask a node for GET /cluster/snapshot directly.', 1);
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const [host, port] = splitHostPort(httpAddr);
      const req = httpRequest({ host, port, method: 'GET', path: '/cluster/snapshot', timeout: this.options.requestTimeoutMs }, resolve);
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    }).catch((error: Error) => { throw new ApiError('NO_LEADER', `Could not reach ${httpAddr}: ${error.message}`, 1); });
    if (upstream.statusCode !== 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of upstream) chunks.push(chunk as Buffer);
      let code: unknown;
      let message = `HTTP ${upstream.statusCode}`;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { code?: unknown; error?: unknown };
        code = body.code;
        if (typeof body.error === 'string') message = body.error;
      } catch { /* keep the status line */ }
      throw new ApiError(isErrorCode(code) ? code : 'INTERNAL', message);
    }
    const disposition = String(upstream.headers['content-disposition'] ?? '');
    const fileName = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'raft-kv.backup';
    return { contentType: 'application/octet-stream', fileName, chunks: upstream };
  }

  private async write(request: Extract<RpcRequest, { type: 'put' | 'delete' }>, given: ClientStamp | undefined): Promise<RpcResult> {
    const stamp = given ?? this.newStamp();
    try {
      return await this.withRetries({ ...request, client: stamp }, () => this.findLeader());
    } finally {
      if (given === undefined) this.inFlightSeqs.delete(stamp.seq);
    }
  }

  /** Every sequence number below the oldest one still in flight has been answered. */
  private newStamp(): ClientStamp {
    const seq = this.nextSeq++;
    const oldest = this.inFlightSeqs.size > 0 ? Math.min(...this.inFlightSeqs) : seq;
    this.inFlightSeqs.add(seq);
    return { clientId: this.clientId, seq, ackedSeq: oldest - 1 };
  }

  /**
   * Send until a definite answer or the deadline. Retries are safe: reads change nothing, and
   * writes carry the same client stamp, so the state machine applies them at most once.
   */
  private async withRetries(request: RpcRequest, target: (deadline: number) => Promise<string>): Promise<RpcResult> {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    let mayHaveBeenProposed = false;
    let lastError: ApiError = new ApiError('NO_LEADER');
    while (Date.now() < deadline) {
      let address: string;
      try {
        address = await target(deadline);
      } catch (error) {
        lastError = error instanceof ApiError ? error : new ApiError('NO_LEADER');
        break;
      }
      let response: RpcResponse;
      try {
        // One attempt may not use the whole budget: a paused or cut-off leader would take it all.
        // Through a follower, the request asks to be forwarded to the leader.
        const viaFollower = this.route !== null && this.route.viaFollower && this.route.address === address;
        response = await this.peers.request(address, viaFollower ? markedForRelay(request) : request, Math.max(1, Math.min(deadline - Date.now(), ATTEMPT_TIMEOUT_MS)));
      } catch (error) {
        const apiError = error instanceof ApiError ? error : new ApiError('NO_LEADER');
        if (apiError.code === 'OUTCOME_UNKNOWN') mayHaveBeenProposed = true;
        lastError = apiError;
        this.forgetLeader(address);
        await this.pause();
        continue;
      }
      if (response.ok) return response.result;
      if (response.code === 'OUTCOME_UNKNOWN') mayHaveBeenProposed = true;
      if (response.code === 'NO_LEADER' || response.code === 'OUTCOME_UNKNOWN' || response.code === 'NO_QUORUM' || response.code === 'SHUTTING_DOWN') {
        lastError = new ApiError(response.code, response.message);
        this.forgetLeader(address);
        await this.pause();
        continue;
      }
      throw new ApiError(response.code, response.message);
    }
    if (mayHaveBeenProposed) throw new ApiError('OUTCOME_UNKNOWN', 'The cluster did not confirm the write before the deadline; retry with the same client id and sequence number.');
    throw new ApiError(lastError.code === 'OUTCOME_UNKNOWN' ? 'OUTCOME_UNKNOWN' : 'NO_LEADER', lastError.message, 1);
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.options.retryIntervalMs ?? 50));
  }

  private forgetLeader(address: string): void {
    if (this.route?.address === address) this.route = null;
  }

  private anyAddress(): Promise<string> {
    this.staleReadCursor = (this.staleReadCursor + 1) % this.knownAddresses.length;
    return Promise.resolve(this.knownAddresses[this.staleReadCursor]);
  }

  /** Ask the nodes who leads, until a way to the leader is known or the deadline passes. */
  private async findLeader(deadline = Date.now() + this.options.requestTimeoutMs): Promise<string> {
    if (this.route !== null && (!this.route.viaFollower || Date.now() < this.route.recheckAt)) return this.route.address;
    while (Date.now() < deadline) {
      const answer = await this.askWhoLeads(deadline);
      if (answer.leader !== null) {
        const { status } = answer.leader;
        this.route = { address: status.peerAddr, viaFollower: false, recheckAt: 0 };
        this.logger.info('leader found', { leader: status.nodeId, term: status.term, address: status.peerAddr });
        return status.peerAddr;
      }
      if (answer.forwarder !== null) {
        const { status, address } = answer.forwarder;
        if (this.route?.address !== address) {
          this.logger.warn('the leader does not answer the gateway; sending through a follower that knows it', { leader: status.leader, term: status.term, via: status.nodeId, address });
        }
        this.route = { address, viaFollower: true, recheckAt: Date.now() + FORWARDER_ROUTE_MS };
        return address;
      }
      this.route = null;
      await this.pause();
    }
    throw new ApiError('NO_LEADER', 'No leader could be found before the deadline; the request was not proposed.', 1);
  }

  /**
   * Ask every known node at once. The first that says it leads answers at once, without waiting for
   * slow or unreachable ones (a paused node would otherwise hold every request). If none of the
   * nodes that answer leads, the follower that knows a leader in the highest term is the way in.
   */
  private askWhoLeads(deadline: number): Promise<{ leader: StatusFrom | null; forwarder: StatusFrom | null }> {
    return new Promise((resolve) => {
      let pending = this.knownAddresses.length;
      let settled = false;
      let forwarder: StatusFrom | null = null;
      const finish = (address: string, status: NodeStatusWithAddresses | null): void => {
        if (settled) return;
        if (status !== null && status.state === 'leader') {
          settled = true;
          resolve({ leader: { address, status }, forwarder: null });
          return;
        }
        if (status !== null && status.leader !== 0 && status.leader !== status.nodeId && (forwarder === null || status.term > forwarder.status.term)) {
          forwarder = { address, status };
        }
        if (--pending === 0) {
          settled = true;
          resolve({ leader: null, forwarder });
        }
      };
      for (const address of [...this.knownAddresses]) {
        this.peers.request(address, { type: 'status' }, Math.min(1000, Math.max(1, deadline - Date.now())))
          .then((response) => {
            const status = response.ok ? (response.result as NodeStatusWithAddresses) : null;
            if (status !== null) this.learnMembership([status]);
            finish(address, status);
          }, () => finish(address, null));
      }
      if (pending === 0) resolve({ leader: null, forwarder: null });
    });
  }

  /** Members added after the gateway started become reachable through what the nodes report. */
  private learnMembership(statuses: readonly NodeStatusWithAddresses[]): void {
    for (const status of statuses) {
      for (const member of status.membership?.members ?? []) {
        if (!this.knownAddresses.includes(member.peerAddr)) this.knownAddresses.push(member.peerAddr);
      }
    }
  }
}

interface StatusFrom {
  /** The address the gateway reached the node on. */
  readonly address: string;
  readonly status: NodeStatusWithAddresses;
}

function splitHostPort(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at).replace(/^\[|\]$/g, ''), Number(address.slice(at + 1))];
}

function checkKey(key: string): void {
  const problem = validateKey(key);
  if (problem) throw new ApiError(problem.code, problem.message);
}
