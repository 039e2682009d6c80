// Membership and leadership on a running node, over the Raft core's single-server changes
// (thesis 4.1), learners and leadership transfer (thesis 3.10):
//
//   - on the leader: add a learner, promote it, remove a member, transfer leadership, one change at
//     a time (409 CONFLICT for a second one), refusing a change that would leave fewer live voters
//     than a quorum unless forced;
//   - on the leader, in the background: promote learners that caught up (AUTO_PROMOTE), and record
//     members' advertised HTTP addresses in the log (founding members start without one);
//   - on every member: notice that a committed configuration no longer holds this node, even when
//     the entry that removed it never reached it (the leader stops replicating to a removed node).
//
// Requests reach these methods on the leader only; NodeBackend routes them (followers forward).

import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { MemberChangeOutcome, MemberInfo, MembersView, NewMember, TransferOutcome } from '../api/backend.js';
import { applyMembershipChange, findMember, voterIds } from '../raft/membership.js';
import type { Index, Member, Membership, MembershipChange, NodeId } from '../raft/types.js';
import type { NodeConfig } from './node-config.js';
import type { PeerClientPool } from './peer-client-pool.js';
import { NotLeaderError, type RaftRuntime } from './raft-runtime.js';
import type { NodeStatusWithAddresses } from './rpc-protocol.js';
import { formatHostPort, parseHostPort, SettingsError } from './settings.js';

type Origin = 'user' | 'system';

interface InFlightChange {
  readonly origin: Origin;
  readonly description: string;
  readonly done: Promise<unknown>;
}

/** How often the background work (promotion, addresses, removal check) runs. */
const HOUSEKEEPING_INTERVAL_MS = 200;
/** How long a user's change waits for a background change (or a new leader's first commit). */
const SYSTEM_CHANGE_WAIT_MS = 2000;
/** A member whose recorded HTTP address is known is asked again this often. */
const ADDRESS_RECHECK_MS = 10_000;
/** Status requests to peers (address sync, removal check). */
const STATUS_TIMEOUT_MS = 1000;

export class ClusterAdmin {
  private inFlight: InFlightChange | null = null;
  private timer: NodeJS.Timeout | null = null;
  private housekeeping = false;
  private readonly addressCheckedAtMs = new Map<NodeId, number>();
  private removalCheckedAtMs = 0;
  private removalCheckDue = false;
  private stopped = false;

  constructor(
    private readonly runtime: RaftRuntime,
    private readonly config: NodeConfig,
    private readonly peers: PeerClientPool,
    private readonly logger: Logger,
    readonly clusterId: string,
    /** The configuration this cluster's log starts from, for joining nodes (bootstrap.ts); when not
     * given, what this node's log holds at index 0 while it still reaches back there. */
    private readonly bootstrapMembership?: Membership | null,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.runHousekeeping(), HOUSEKEEPING_INTERVAL_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** A member counts as live when a Raft message arrived from it within this window. */
  get livenessWindowMs(): number {
    return Math.max(1000, 3 * this.config.electionTimeoutMsMax);
  }

  // ---- Views -------------------------------------------------------------------------------------

  /** This node's view: with each member's progress when it leads. */
  view(): MembersView {
    const node = this.runtime.node;
    const leading = node.role === 'leader';
    const progress = leading ? node.followerProgress() : null;
    const members = node.membership.members.map((member): MemberInfo => {
      const base = { id: member.id, peerAddr: member.peerAddr, httpAddr: member.httpAddr, role: member.role };
      if (progress === null) return base;
      const matchIndex = member.id === this.config.nodeId ? node.lastIndex : (progress.get(member.id)?.match ?? 0);
      return { ...base, matchIndex, caughtUp: this.caughtUp(matchIndex), live: this.isLive(member.id) };
    });
    return {
      clusterId: this.clusterId,
      leader: node.leaderId,
      term: node.term,
      membershipIndex: node.membershipIndex,
      view: leading ? 'leader' : 'local',
      nodeId: this.config.nodeId,
      members,
      bootstrapMembership: this.bootstrapMembership !== undefined ? this.bootstrapMembership : (node.membershipAt(0) ?? null),
    };
  }

  // ---- Changes (leader only) -----------------------------------------------------------------

  async addLearner(spec: NewMember): Promise<MemberChangeOutcome> {
    const member = normalizeNewMember(spec);
    this.requireLeader();
    const current = this.runtime.node.membership;
    const existing = findMember(current, member.id);
    if (existing !== undefined) {
      // A joining node asks again after a restart or a lost answer: the same request is a success.
      // Not for a voter: a voter that lost its data must not vote again with an empty log.
      if (existing.peerAddr === member.peerAddr && existing.role === 'learner') return this.outcome('unchanged', member.id, 0);
      if (existing.peerAddr === member.peerAddr) {
        throw new ApiError('BAD_REQUEST', `Node ${member.id} is already a voter. A voter that lost its data must be removed first (DELETE /cluster/members/${member.id}) and then join again with an empty DATA_DIR, preferably under a new id.`);
      }
      throw new ApiError('BAD_REQUEST', `Node id ${member.id} is already a member, at peer address ${existing.peerAddr}; pick another id, or remove it first.`);
    }
    const sameAddress = current.members.find((m) => m.peerAddr === member.peerAddr);
    if (sameAddress !== undefined) {
      throw new ApiError('BAD_REQUEST', `Peer address ${member.peerAddr} belongs to member ${sameAddress.id}; remove it first (DELETE /cluster/members/${sameAddress.id}).`);
    }
    const index = await this.exclusive('user', `adding node ${member.id}`, () =>
      this.runtime.proposeMembershipChange({ kind: 'addLearner', member }, this.config.requestTimeoutMs));
    this.logger.info('learner added', { id: member.id, peerAddr: member.peerAddr, httpAddr: member.httpAddr, index });
    return this.outcome('added', member.id, index);
  }

  async promote(id: NodeId, force: boolean): Promise<MemberChangeOutcome> {
    this.requireLeader();
    const member = findMember(this.runtime.node.membership, id);
    if (member === undefined) throw new ApiError('NOT_FOUND', `Node ${id} is not a member.`);
    if (member.role === 'voter') return this.outcome('unchanged', id, 0);
    const match = this.runtime.node.followerProgress().get(id)?.match ?? 0;
    if (!force && !this.caughtUp(match)) {
      throw new ApiError('LEARNER_BEHIND', `Node ${id} holds the log up to ${match}, the leader up to ${this.runtime.node.lastIndex}: more than ${this.config.promoteMaxLagEntries} entries behind; it was not promoted (wait, or force).`);
    }
    const index = await this.exclusive('user', `promoting node ${id}`, () => this.proposeChecked({ kind: 'promote', id }, force, `Promoting node ${id}`));
    this.logger.info('learner promoted to voter', { id, index });
    return this.outcome('promoted', id, index);
  }

  /** Remove a member. The leader removing itself hands leadership over first and then throws
   * NotLeaderError, so the caller takes the request to the new leader. */
  async remove(id: NodeId, force: boolean): Promise<MemberChangeOutcome> {
    this.requireLeader();
    if (findMember(this.runtime.node.membership, id) === undefined) throw new ApiError('NOT_FOUND', `Node ${id} is not a member.`);
    if (id === this.config.nodeId && voterIds(this.runtime.node.membership).length > 1) {
      const handedOver = await this.exclusive('user', `removing node ${id} (the leader)`, async () => {
        try {
          const newLeader = await this.runtime.transferLeadership(this.bestSuccessor(), this.transferTimeoutMs());
          this.logger.info('leadership handed over before this node\'s removal', { newLeader });
          return true;
        } catch (error) {
          // Forced: a leader may also remove itself (it leads until the removal commits, then
          // steps down, thesis 4.2.2); the cluster then waits an election timeout for a new leader.
          if (!force || !(error instanceof ApiError) || error.code !== 'TRANSFER_FAILED') throw error;
          this.logger.warn('leadership was not handed over; removing this node while it leads (forced)', { reason: error.message });
          return false;
        }
      });
      if (handedOver) throw new NotLeaderError(true);
    }
    const removed = findMember(this.runtime.node.membership, id);
    const index = await this.exclusive('user', `removing node ${id}`, () => this.proposeChecked({ kind: 'remove', id }, force, `Removing node ${id}`));
    this.logger.info('member removed', { id, index });
    if (removed !== undefined && id !== this.config.nodeId) void this.tellRemoved(removed);
    return this.outcome('removed', id, index);
  }

  async transfer(to: NodeId | null): Promise<TransferOutcome> {
    this.requireLeader();
    if (to !== null) {
      const member = findMember(this.runtime.node.membership, to);
      if (member === undefined) throw new ApiError('NOT_FOUND', `Node ${to} is not a member.`);
      if (member.role !== 'voter') throw new ApiError('BAD_REQUEST', `Node ${to} is a learner; only a voter can lead.`);
    }
    const startedMs = performance.now();
    const previousLeader = this.config.nodeId;
    const leader = await this.exclusive('user', 'a leadership transfer', () => this.runtime.transferLeadership(to ?? this.bestSuccessor(), this.transferTimeoutMs()));
    const tookMs = Math.round(performance.now() - startedMs);
    this.logger.info('leadership transferred', { from: previousLeader, to: leader, tookMs });
    return { previousLeader, leader, tookMs };
  }

  /** A leader says this node may have been removed: check now rather than after a silence. */
  removalNoticed(id: NodeId): void {
    if (id !== this.config.nodeId || this.runtime.node.role === 'leader') return;
    this.removalCheckDue = true;
    void this.runHousekeeping();
  }

  // ---- Internals -------------------------------------------------------------------------------

  /** The leader no longer replicates to a removed member, so it would learn of its removal only
   * after a silence; meanwhile its clients' reads could wait on a leader that no longer answers it. */
  private async tellRemoved(member: Member): Promise<void> {
    try {
      await this.peers.request(member.peerAddr, { type: 'removedNotice', id: member.id }, STATUS_TIMEOUT_MS);
    } catch {
      // It is down, or will notice by itself.
    }
  }

  private requireLeader(): void {
    if (this.runtime.removed !== null) throw new ApiError('SHUTTING_DOWN', 'This node was removed from the cluster.');
    if (this.runtime.node.role !== 'leader') throw new NotLeaderError(false);
  }

  /** The live voter (other than this leader) with the longest log; null lets the core choose. */
  private bestSuccessor(): NodeId | null {
    const node = this.runtime.node;
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const id of voterIds(node.membership)) {
      if (id === this.config.nodeId || !this.isLive(id)) continue;
      const match = node.followerProgress().get(id)?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    return best;
  }

  private transferTimeoutMs(): number {
    return Math.max(1000, 4 * this.config.electionTimeoutMsMax);
  }

  /** Holds everything up to the leader's snapshot point (no snapshot still owed) and lags by at
   * most PROMOTE_MAX_LAG_ENTRIES. */
  private caughtUp(matchIndex: Index): boolean {
    const node = this.runtime.node;
    return matchIndex > 0 && matchIndex >= node.latestSnapshot.index && node.lastIndex - matchIndex <= this.config.promoteMaxLagEntries;
  }

  private isLive(id: NodeId): boolean {
    return this.runtime.heardFromWithin(id, this.livenessWindowMs);
  }

  /** Propose after checking that the voters of the next configuration include a live quorum. */
  private proposeChecked(change: MembershipChange, force: boolean, what: string): Promise<Index> {
    const next = applyMembershipChange(this.runtime.node.membership, change);
    if (typeof next === 'string') throw new ApiError(next.endsWith('is not a member') ? 'NOT_FOUND' : 'BAD_REQUEST', `Refused: ${next}.`);
    const problem = liveQuorumProblem(next, (id) => this.isLive(id));
    if (problem !== null) {
      if (!force) throw new ApiError('QUORUM_AT_RISK', `${what} would leave ${problem}; nothing was changed (force it to override).`);
      this.logger.warn('membership change forced despite the live-quorum check', { change, problem });
    }
    return this.runtime.proposeMembershipChange(change, this.config.requestTimeoutMs);
  }

  /**
   * One change at a time. A second user change while one is in flight here gets 409 CONFLICT at
   * once; a background change (promotion, address record) or a new leader's first commit is
   * waited for briefly first, since the user did not start those.
   */
  private async exclusive<T>(origin: Origin, description: string, run: () => Promise<T>): Promise<T> {
    const deadline = performance.now() + SYSTEM_CHANGE_WAIT_MS;
    for (;;) {
      const current = this.inFlight;
      if (current !== null) {
        if (current.origin === 'user' || origin === 'system' || performance.now() >= deadline) {
          throw new ApiError('CONFLICT', `Another membership change (${current.description}) is in progress; retry once it is done.`);
        }
        await Promise.race([current.done.catch(() => {}), sleep(deadline - performance.now())]);
        continue;
      }
      if (this.runtime.node.membershipChangePending) {
        if (origin === 'system' || performance.now() >= deadline) {
          throw new ApiError('CONFLICT', 'Another membership change is in progress (appended, not yet committed); retry once it is done.');
        }
        await sleep(Math.max(1, this.config.tickMs));
        continue;
      }
      this.requireLeader();
      break;
    }
    const done = run();
    this.inFlight = { origin, description, done };
    try {
      return await done;
    } finally {
      this.inFlight = null;
    }
  }

  private outcome(change: MemberChangeOutcome['change'], id: NodeId, index: Index): MemberChangeOutcome {
    return { change, id, index, members: this.view().members };
  }

  // ---- Background work ---------------------------------------------------------------------------

  private async runHousekeeping(): Promise<void> {
    if (this.housekeeping || this.stopped || this.runtime.removed !== null) return;
    this.housekeeping = true;
    try {
      if (this.runtime.node.role === 'leader') {
        if (this.inFlight === null && !this.runtime.node.membershipChangePending) {
          if (this.config.autoPromote) await this.promoteCaughtUpLearner();
          await this.recordAdvertisedAddresses();
        }
      } else {
        await this.checkWhetherRemoved();
      }
    } catch (error) {
      this.logger.debug('membership housekeeping step failed', { error: (error as Error).message });
    } finally {
      this.housekeeping = false;
    }
  }

  private async promoteCaughtUpLearner(): Promise<void> {
    const node = this.runtime.node;
    for (const member of node.membership.members) {
      if (member.role !== 'learner') continue;
      const match = node.followerProgress().get(member.id)?.match ?? 0;
      if (!this.caughtUp(match) || !this.isLive(member.id)) continue;
      const next = applyMembershipChange(node.membership, { kind: 'promote', id: member.id });
      if (typeof next === 'string' || liveQuorumProblem(next, (id) => this.isLive(id)) !== null) continue;
      this.logger.info('learner caught up: promoting it to voter', { id: member.id, matchIndex: match, lastIndex: node.lastIndex, maxLagEntries: this.config.promoteMaxLagEntries });
      try {
        const index = await this.exclusive('system', `promoting node ${member.id}`, () =>
          this.runtime.proposeMembershipChange({ kind: 'promote', id: member.id }, this.config.requestTimeoutMs));
        this.logger.info('learner promoted to voter', { id: member.id, index, automatic: true });
      } catch (error) {
        this.logger.info('automatic promotion did not happen; will try again', { id: member.id, reason: (error as Error).message });
      }
      return;
    }
  }

  /** Founding members are recorded without an HTTP address, and any member may come back with a
   * new one: ask each what it advertises, and record a difference in the log (one at a time). */
  private async recordAdvertisedAddresses(): Promise<void> {
    const node = this.runtime.node;
    const nowMs = performance.now();
    for (const member of node.membership.members) {
      let advertised: string | null = null;
      if (member.id === this.config.nodeId) {
        advertised = this.config.httpAdvertise;
      } else {
        const checkedAt = this.addressCheckedAtMs.get(member.id) ?? -Infinity;
        const due = member.httpAddr === '' ? 1000 : ADDRESS_RECHECK_MS;
        if (nowMs - checkedAt < due || !this.isLive(member.id)) continue;
        this.addressCheckedAtMs.set(member.id, nowMs);
        advertised = await this.askAdvertisedHttpAddress(member);
      }
      if (advertised === null || advertised === member.httpAddr) continue;
      if (this.inFlight !== null || node.role !== 'leader' || node.membershipChangePending) return;
      const current = findMember(node.membership, member.id);
      if (current === undefined || current.httpAddr === advertised) continue;
      try {
        const index = await this.exclusive('system', `recording node ${member.id}'s HTTP address`, () =>
          this.runtime.proposeMembershipChange({ kind: 'updateAddresses', id: member.id, peerAddr: current.peerAddr, httpAddr: advertised }, this.config.requestTimeoutMs));
        this.logger.info('member HTTP address recorded in the membership', { id: member.id, httpAddr: advertised, index });
      } catch (error) {
        this.logger.debug('recording a member address did not happen; will try again', { id: member.id, reason: (error as Error).message });
      }
      return;
    }
  }

  private async askAdvertisedHttpAddress(member: Member): Promise<string | null> {
    try {
      const response = await this.peers.request(member.peerAddr, { type: 'status' }, STATUS_TIMEOUT_MS);
      if (!response.ok) return null;
      const status = response.result as NodeStatusWithAddresses;
      if (status.nodeId !== member.id) {
        this.logger.warn('the peer address of a member answers as another node', { member: member.id, peerAddr: member.peerAddr, answeredAs: status.nodeId });
        return null;
      }
      return typeof status.httpAddr === 'string' && status.httpAddr !== '' ? status.httpAddr : null;
    } catch {
      return null;
    }
  }

  /**
   * A leader stops replicating to a member as soon as the entry removing it is appended, so the
   * removed node rarely learns of its removal from its own log. When it has heard no leader for a
   * while, it asks the others: a leader whose committed configuration supersedes ours and lacks us
   * settles it.
   */
  private async checkWhetherRemoved(): Promise<void> {
    const node = this.runtime.node;
    const self = this.config.nodeId;
    if (findMember(node.membership, self) === undefined) return; // joining: not a member yet
    const quietMs = 2 * this.config.electionTimeoutMsMax;
    const leaderQuiet = node.leaderId === 0 || node.leaderId === self || this.runtime.silenceMs(node.leaderId) > quietMs;
    const nowMs = performance.now();
    const due = this.removalCheckDue || (leaderQuiet && nowMs - this.removalCheckedAtMs >= Math.max(1000, quietMs));
    if (!due) return;
    this.removalCheckDue = false;
    this.removalCheckedAtMs = nowMs;
    const others = node.membership.members.filter((member) => member.id !== self);
    const statuses = await Promise.all(others.map(async (member) => {
      try {
        const response = await this.peers.request(member.peerAddr, { type: 'status' }, STATUS_TIMEOUT_MS);
        return response.ok ? (response.result as NodeStatusWithAddresses) : null;
      } catch {
        return null;
      }
    }));
    for (const status of statuses) {
      if (status === null || status.state !== 'leader' || status.term < node.term) continue;
      const committed = status.membershipIndex <= status.commitIndex;
      const supersedes = status.membershipIndex >= node.membershipIndex;
      if (committed && supersedes && !status.membership.members.some((member) => member.id === self)) {
        this.runtime.markRemoved({ index: status.membershipIndex, how: `node ${status.nodeId}, the leader in term ${status.term}, has a committed membership without this node` });
        return;
      }
    }
  }
}

/** null when the voters of `next` include a live quorum, else a phrase saying how short it falls. */
export function liveQuorumProblem(next: Membership, isLive: (id: NodeId) => boolean): string | null {
  const voters = voterIds(next);
  const live = voters.filter(isLive).length;
  const quorum = Math.floor(voters.length / 2) + 1;
  if (live >= quorum) return null;
  return `${live} live voter(s) of ${voters.length}, fewer than the ${quorum} a quorum needs`;
}

/** Validates and normalises a member to add (addresses as host:port). */
export function normalizeNewMember(spec: NewMember): NewMember {
  if (!Number.isSafeInteger(spec.id) || spec.id < 1 || spec.id > 1_000_000) throw new ApiError('BAD_REQUEST', '"id" must be an integer from 1 to 1000000.');
  const address = (value: unknown, name: string, allowEmpty: boolean): string => {
    if (typeof value !== 'string') throw new ApiError('BAD_REQUEST', `"${name}" must be a string host:port.`);
    if (allowEmpty && value === '') return '';
    try {
      return formatHostPort(parseHostPort(value, name));
    } catch (error) {
      throw new ApiError('BAD_REQUEST', error instanceof SettingsError ? `${error.message}.` : `"${name}" is not host:port.`);
    }
  };
  return { id: spec.id, peerAddr: address(spec.peerAddr, 'peerAddr', false), httpAddr: address(spec.httpAddr, 'httpAddr', true) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
