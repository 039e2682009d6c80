// The operator who changes the cluster's membership during a run, one server at a time (Raft
// thesis chapter 4), through whichever node currently leads. It works toward a goal drawn at random:
//
//   grow       3 (or 4) voters -> up to 5: fresh nodes join as learners, catch up, are promoted
//   shrink     5 (or 4) voters -> down to 3, the leader itself sometimes among the removed
//   replace    remove one voter and add a fresh node in its place (either order; removing first
//              leaves two voters for a while)
//   learners   add one or two fresh learners that stay learners for a while
//   promote    promote a learner;  dropLearner: remove a learner
//
// Each step is one proposeMembershipChange on the leader; a refusal (another change pending, no
// leader, transfer in progress) is retried on the next poll. In 'steady' mode a learner is promoted
// once it has caught up (or after a while regardless), and the operator polls every 10-60 ms; in
// 'aggressive' mode it proposes the next step right after one is accepted and never waits for
// catch-up, so a core that allowed several uncommitted changes would pile them up.
//
// A fresh node gets an id never used before (cluster.allocateId) and an empty disk; one started for
// a goal abandoned before it joined (so never a member) serves the next goal. A member whose removal
// is committed (the leader's latest configuration is committed and no longer names it) is shut down
// for good after lingering up to 300 ms: while it lingers it may still campaign with its stale
// configuration, as a removed server does (thesis 4.2.3).

import { memberIds } from '../../src/raft/membership.js';
import type { Membership, MembershipChange, NodeId, ProposeResult } from '../../src/raft/types.js';
import type { RaftNode } from '../../src/raft/node.js';
import type { Cluster } from './cluster.js';
import { ms, type Micros } from './events.js';
import type { Rng } from './rng.js';

export type MembershipMode = 'off' | 'steady' | 'aggressive';

export type GoalKind = 'grow' | 'shrink' | 'replace' | 'learners' | 'promote' | 'dropLearner';

export interface MembershipOperatorOptions {
  readonly mode: MembershipMode;
  /** No change is proposed from this simulated time on. */
  readonly endMicros: Micros;
  /** Pause between reaching one goal and choosing the next. */
  readonly pauseMicrosMin: Micros;
  readonly pauseMicrosMax: Micros;
  /** Steady mode promotes a learner that has not caught up after this long anyway. */
  readonly catchUpWaitMicrosMax: Micros;
  /** A removed member stays up at most this long before it is shut down. */
  readonly lingerMicrosMax: Micros;
  readonly voterCountMin: number;
  readonly voterCountMax: number;
  /** Members (voters and learners) at most. */
  readonly memberCountMax: number;
}

export const DEFAULT_MEMBERSHIP_OPTIONS: Omit<MembershipOperatorOptions, 'mode' | 'endMicros'> = {
  pauseMicrosMin: ms(50),
  pauseMicrosMax: ms(1500),
  catchUpWaitMicrosMax: ms(1500),
  lingerMicrosMax: ms(300),
  voterCountMin: 3,
  voterCountMax: 5,
  memberCountMax: 7,
};

export interface MembershipStats {
  goals: number;
  goalsReached: number;
  goalsAbandoned: number;
  proposed: number;
  accepted: number;
  refused: number;
  added: number;
  promoted: number;
  removed: number;
  leaderRemovals: number;
  retired: number;
}

interface Goal {
  readonly kind: GoalKind;
  readonly voters: ReadonlySet<NodeId>;
  readonly learners: ReadonlySet<NodeId>;
  readonly order: 'addFirst' | 'removeFirst';
  /** When the current learner started waiting to catch up (0: not waiting). */
  catchUpSince: Micros;
}

/** How far behind the leader's commit index a learner may be and still count as caught up. */
const CATCH_UP_SLACK_ENTRIES = 5;

export class MembershipOperator {
  readonly stats: MembershipStats = {
    goals: 0, goalsReached: 0, goalsAbandoned: 0, proposed: 0, accepted: 0, refused: 0, added: 0, promoted: 0, removed: 0,
    leaderRemovals: 0, retired: 0,
  };
  private readonly options: MembershipOperatorOptions;
  private goal: Goal | null = null;
  private nextGoalAt: Micros = 0;
  private stopped = false;
  /** Every node that was ever in a committed configuration. */
  private readonly everMember = new Set<NodeId>();
  /** Removed (their removal committed): never added again, shut down soon. */
  private readonly removedIds = new Set<NodeId>();
  /** Provisioned nodes that never became members (their goal was abandoned): used before new ids. */
  private readonly spare: NodeId[] = [];
  private committedConfigIndex = -1;

  constructor(
    private readonly cluster: Cluster,
    private readonly rng: Rng,
    options: Pick<MembershipOperatorOptions, 'mode' | 'endMicros'> & Partial<MembershipOperatorOptions>,
  ) {
    this.options = { ...DEFAULT_MEMBERSHIP_OPTIONS, ...options };
    for (const id of cluster.foundingIds) this.everMember.add(id);
  }

  start(): void {
    if (this.options.mode === 'off') return;
    this.nextGoalAt = this.cluster.sim.now + this.rng.intBetween(this.options.pauseMicrosMin, this.options.pauseMicrosMax);
    this.schedule(this.rng.intBetween(ms(10), ms(60)));
  }

  /** No more polling at all (the end of the run). */
  stop(): void {
    this.stopped = true;
  }

  private schedule(delay: Micros): void {
    this.cluster.sim.after(delay, () => {
      if (!this.stopped) this.poll();
    });
  }

  private note(text: string): void {
    this.cluster.trace.add(`OPERATOR ${text}`);
  }

  private poll(): void {
    this.retireRemoved();
    const sim = this.cluster.sim;
    const normalDelay = this.rng.intBetween(ms(10), ms(60));
    if (sim.now >= this.options.endMicros) {
      // No more changes, but members whose removal commits later are still shut down.
      this.schedule(ms(50));
      return;
    }
    const leader = this.cluster.leader();
    const node = leader?.node ?? null;
    if (leader === undefined || node === null || leader.isPaused) {
      this.schedule(normalDelay);
      return;
    }
    if (this.goal === null) {
      if (sim.now < this.nextGoalAt) {
        this.schedule(normalDelay);
        return;
      }
      this.goal = this.chooseGoal(node, leader.id);
      if (this.goal === null) {
        this.nextGoalAt = sim.now + this.rng.intBetween(this.options.pauseMicrosMin, this.options.pauseMicrosMax);
        this.schedule(normalDelay);
        return;
      }
    }
    const change = this.nextChange(node, this.goal);
    if (change === 'done' || change === 'abandon') {
      if (change === 'done') this.stats.goalsReached++;
      else this.stats.goalsAbandoned++;
      this.note(`goal ${this.goal.kind} ${change === 'done' ? 'reached' : 'abandoned'}: {${describe(node.membership)}}`);
      this.goal = null;
      this.nextGoalAt = sim.now + this.rng.intBetween(this.options.pauseMicrosMin, this.options.pauseMicrosMax);
      this.schedule(normalDelay);
      return;
    }
    if (change === 'wait') {
      this.schedule(normalDelay);
      return;
    }
    const result = this.propose(leader.id, node, change);
    const quick = result?.ok === true && this.options.mode === 'aggressive';
    this.schedule(quick ? this.rng.intBetween(0, ms(2)) : normalDelay);
  }

  private propose(leaderId: NodeId, node: RaftNode, change: MembershipChange): ProposeResult | null {
    if (change.kind === 'addLearner' || change.kind === 'addVoter') {
      if (node.membership.members.every((member) => member.id !== change.member.id)) this.cluster.provision(change.member.id, node);
    }
    this.stats.proposed++;
    const result = this.cluster.runtime(leaderId).proposeMembershipChange(change);
    if (result?.ok === true) {
      this.stats.accepted++;
      if (change.kind === 'addLearner') this.stats.added++;
      else if (change.kind === 'promote' || change.kind === 'addVoter') this.stats.promoted++;
      else if (change.kind === 'remove') {
        this.stats.removed++;
        if (change.id === leaderId) this.stats.leaderRemovals++;
      }
      this.note(`n${leaderId} accepted ${describeChange(change)} at ${result.index}/${result.term}`);
    } else {
      this.stats.refused++;
      this.note(`n${leaderId} refused ${describeChange(change)}: ${result === null ? 'down' : result.reason}`);
    }
    return result;
  }

  // ---- Goals -----------------------------------------------------------------------------------

  private freshId(): NodeId {
    return this.spare.shift() ?? this.cluster.allocateId();
  }

  private chooseGoal(node: RaftNode, leaderId: NodeId): Goal | null {
    const membership = node.membership;
    const voters = membership.members.filter((m) => m.role === 'voter').map((m) => m.id);
    const learners = membership.members.filter((m) => m.role === 'learner').map((m) => m.id);
    const members = voters.length + learners.length;
    const { voterCountMin, voterCountMax, memberCountMax } = this.options;
    const kinds: GoalKind[] = [];
    if (voters.length < voterCountMax && members < memberCountMax) kinds.push('grow', 'grow');
    if (voters.length > voterCountMin) kinds.push('shrink', 'shrink');
    if (voters.length >= voterCountMin && members < memberCountMax) kinds.push('replace', 'replace');
    if (members < memberCountMax) kinds.push('learners');
    if (learners.length > 0) kinds.push('promote', 'dropLearner');
    if (kinds.length === 0) return null;
    const kind = this.rng.pick(kinds);
    const nextVoters = new Set(voters);
    const nextLearners = new Set(learners);
    const removeVoter = (): void => {
      // The leader is removed now and then on purpose: it must step down once the change commits.
      const victim = nextVoters.has(leaderId) && this.rng.chance(0.25) ? leaderId : this.rng.pick([...nextVoters]);
      nextVoters.delete(victim);
    };
    switch (kind) {
      case 'grow': {
        const target = this.rng.chance(0.5) ? voterCountMax : voters.length + 1;
        while (nextVoters.size < target && nextVoters.size + nextLearners.size < memberCountMax) nextVoters.add(this.freshId());
        break;
      }
      case 'shrink': {
        const target = this.rng.chance(0.5) ? voterCountMin : voters.length - 1;
        while (nextVoters.size > target) removeVoter();
        break;
      }
      case 'replace':
        removeVoter();
        nextVoters.add(this.freshId());
        break;
      case 'learners': {
        const count = members + 2 <= memberCountMax && this.rng.chance(0.5) ? 2 : 1;
        for (let k = 0; k < count; k++) nextLearners.add(this.freshId());
        break;
      }
      case 'promote': {
        const id = this.rng.pick(learners);
        nextLearners.delete(id);
        nextVoters.add(id);
        break;
      }
      case 'dropLearner':
        nextLearners.delete(this.rng.pick(learners));
        break;
    }
    const order = this.rng.chance(0.5) ? 'addFirst' : 'removeFirst';
    const goal: Goal = { kind, voters: nextVoters, learners: nextLearners, order, catchUpSince: 0 };
    this.stats.goals++;
    this.note(
      `goal ${kind} (${goal.order}, ${this.options.mode}): {${describe(membership)}} -> voters {${[...nextVoters].join(',')}} ` +
        `learners {${[...nextLearners].join(',')}}`,
    );
    return goal;
  }

  /** The next change toward `goal` from the leader's latest configuration, or what to do instead. */
  private nextChange(node: RaftNode, goal: Goal): MembershipChange | 'done' | 'wait' | 'abandon' {
    const roles = new Map(node.membership.members.map((member) => [member.id, member.role] as const));
    const wanted = [...goal.voters, ...goal.learners];
    if (wanted.some((id) => this.removedIds.has(id))) {
      // Another leader's committed configuration removed a node this goal keeps: start afresh.
      for (const id of wanted) if (!roles.has(id) && !this.everMember.has(id) && !this.removedIds.has(id)) this.spare.push(id);
      return 'abandon';
    }
    const adds = wanted.filter((id) => !roles.has(id));
    const promotes = [...goal.voters].filter((id) => roles.get(id) === 'learner');
    const removes = [...roles.keys()].filter((id) => !goal.voters.has(id) && !goal.learners.has(id));
    const groups = goal.order === 'addFirst' ? [adds, promotes, removes] : [removes, adds, promotes];
    const group = groups.find((ids) => ids.length > 0);
    if (group === undefined) return 'done';
    const id = group[0] as NodeId;
    if (group === removes) return { kind: 'remove', id };
    if (group === adds) return { kind: 'addLearner', member: { id, peerAddr: `n${id}:7001`, httpAddr: `n${id}:8001` } };
    if (this.options.mode === 'steady' && !this.caughtUp(node, id)) {
      const now = this.cluster.sim.now;
      if (goal.catchUpSince === 0) goal.catchUpSince = now;
      if (now - goal.catchUpSince < this.options.catchUpWaitMicrosMax) return 'wait';
    }
    goal.catchUpSince = 0;
    // addVoter of an existing learner promotes it too: both spellings are exercised.
    return this.rng.chance(0.5) ? { kind: 'promote', id } : { kind: 'addVoter', member: { id, peerAddr: `n${id}:7001`, httpAddr: `n${id}:8001` } };
  }

  private caughtUp(node: RaftNode, id: NodeId): boolean {
    const progress = node.followerProgress().get(id);
    return progress !== undefined && progress.match + CATCH_UP_SLACK_ENTRIES >= node.commitIndex;
  }

  // ---- Removed members -------------------------------------------------------------------------

  /** Shuts down members whose removal the leader's latest, committed configuration shows. */
  retireRemoved(): void {
    const node = this.cluster.leader()?.node ?? null;
    if (node === null || node.membershipIndex > node.commitIndex || node.membershipIndex <= this.committedConfigIndex) return;
    this.committedConfigIndex = node.membershipIndex;
    const ids = memberIds(node.membership);
    for (const id of ids) this.everMember.add(id);
    for (const id of this.everMember) {
      if (ids.includes(id) || this.removedIds.has(id)) continue;
      this.removedIds.add(id);
      const linger = this.rng.intBetween(0, this.options.lingerMicrosMax);
      this.note(`n${id}'s removal is committed (configuration at ${node.membershipIndex}): shut down in ${(linger / 1000).toFixed(0)}ms`);
      this.cluster.sim.after(linger, () => {
        this.stats.retired++;
        this.cluster.retire(id);
      });
    }
  }
}

function describe(membership: Membership): string {
  return [...membership.members].sort((a, b) => a.id - b.id).map((m) => `${m.id}${m.role === 'learner' ? 'L' : ''}`).join(',');
}

function describeChange(change: MembershipChange): string {
  switch (change.kind) {
    case 'addVoter':
    case 'addLearner':
      return `${change.kind} n${change.member.id}`;
    case 'promote':
    case 'remove':
      return `${change.kind} n${change.id}`;
    case 'updateAddresses':
      return `updateAddresses n${change.id}`;
  }
}
