// One Raft peer as a pure state machine (the design of etcd's raft library): the runtime feeds it
// ticks, peer messages and proposals, and drains the work it asks for with ready()/advance().
// Section numbers refer to the Raft paper (Ongaro & Ousterhout, 2014) and thesis (Ongaro, 2014).

import { invariant } from './assert.js';
import { entrySizeBytes, RaftLog } from './log.js';
import { ConfigHistory, applyMembershipChange, isVoter, memberIds, voterIds } from './membership.js';
import { Progress } from './progress.js';
import { hasQuorum, quorumIndex, voteOutcome } from './quorum.js';
import { ReadIndexTracker } from './readindex.js';
import {
  NO_NODE,
  type AppendRequest, type AppendResponse, type Entry, type HardState, type HeartbeatRequest,
  type HeartbeatResponse, type Index, type Membership, type MembershipChange, type Message,
  type NodeId, type ProposeResult, type RaftConfig, type RaftEvent, type RaftInitialState,
  type ReadIndexRequest, type ReadIndexResponse, type ReadState, type Ready, type Role,
  type SnapshotMeta, type SnapshotRequest, type SoftState, type Term, type VoteRequest,
  type VoteResponse,
} from './types.js';

export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'notLeader' | 'noLeader'; readonly leaderId: NodeId }
  | { readonly ok: false; readonly reason: 'overloaded' };
export type TransferResult = { readonly ok: true; readonly to: NodeId } | { readonly ok: false; readonly reason: string };

/** Bytes of committed entries handed out for applying in one Ready. */
const MAX_APPLY_BYTES_PER_READY = 4 * 1024 * 1024;

/** What the last Ready promised, remembered until advance() confirms it. */
interface ReadyInFlight {
  readonly lastEntry: { readonly index: Index; readonly term: Term } | null;
  readonly hardState: HardState | null;
  readonly snapshot: SnapshotMeta | null;
  readonly lastCommitted: Index;
}

export class RaftNode {
  protected readonly config: RaftConfig;
  protected currentTerm: Term;
  protected votedFor: NodeId;
  protected roleNow: Role = 'follower';
  protected leader: NodeId = NO_NODE;
  protected readonly log: RaftLog;
  protected readonly configs: ConfigHistory;
  /** The latest snapshot the runtime holds: what a lagging follower is sent. */
  protected snapshot: SnapshotMeta;
  /** A snapshot received from the leader, to hand to the runtime in the next Ready. */
  private snapshotToInstall: SnapshotMeta | null = null;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private readonly votes = new Map<NodeId, boolean>();
  protected readonly progress = new Map<NodeId, Progress>();
  private uncommittedBytes = 0;
  /** Leader: index of the newest config entry; a new change waits until it commits. */
  private pendingConfigIndex: Index = 0;
  private transferTarget: NodeId = NO_NODE;
  private transferElapsed = 0;
  /** Leader: appends are owed to followers; sent once per Ready so proposals share a message. */
  private broadcastOwed = false;
  /** Leader: the commit index moved; followers hear of it even when no entry is new. */
  private commitBroadcastOwed = false;
  /** Leader: reads were queued; one heartbeat round per Ready serves them all. */
  private readRoundOwed = false;
  private readonly reads = new ReadIndexTracker();

  private messagesNow: Message[] = [];
  private messagesAfterPersist: Message[] = [];
  private events: RaftEvent[] = [];
  private readStates: ReadState[] = [];
  /** The hard state last handed out (or recovered): a Ready carries one only when it changed. */
  private lastHardState: HardState;
  private inFlight: ReadyInFlight | null = null;

  constructor(config: RaftConfig, initial: RaftInitialState) {
    invariant(config.id >= 1, 'node ids start at 1');
    invariant(config.electionTimeoutTicksMin > config.heartbeatIntervalTicks, 'election timeout must exceed the heartbeat interval');
    invariant(config.electionTimeoutTicksMax > config.electionTimeoutTicksMin, 'election timeout range is empty');
    this.config = config;
    this.currentTerm = initial.hardState.term;
    this.votedFor = initial.hardState.votedFor;
    this.lastHardState = initial.hardState;
    this.snapshot = initial.snapshot;
    this.log = new RaftLog(initial.snapshot, initial.entries, initial.hardState.commitIndex, initial.appliedIndex);
    this.configs = new ConfigHistory(initial.snapshot.index, initial.snapshot.membership);
    for (const entry of initial.entries) {
      if (entry.kind === 'config' && entry.index > initial.snapshot.index) this.configs.appended(entry.index, entry.term, entry.membership);
    }
    this.becomeFollower(this.currentTerm, NO_NODE);
  }

  // ---- Observers -------------------------------------------------------------------------------

  get id(): NodeId { return this.config.id; }
  get role(): Role { return this.roleNow; }
  get term(): Term { return this.currentTerm; }
  get leaderId(): NodeId { return this.leader; }
  get commitIndex(): Index { return this.log.committed; }
  get appliedIndex(): Index { return this.log.applied; }
  get lastIndex(): Index { return this.log.lastIndex(); }
  get firstIndex(): Index { return this.log.firstIndex(); }
  get hardState(): HardState { return { term: this.currentTerm, votedFor: this.votedFor, commitIndex: this.log.committed }; }
  get membership(): Membership { return this.configs.current(); }
  /** Index of the entry (or snapshot) that set the current membership; it is in force once that
   * index is committed. */
  get membershipIndex(): Index { return this.configs.currentIndex(); }
  /** Leader: whether a membership change is appended but not yet committed (a new one would be
   * refused with 'membershipChangePending'). */
  get membershipChangePending(): boolean {
    return this.roleNow === 'leader' && !this.membershipChangeAllowed();
  }
  /** The membership in force at `index`, while the log still reaches back to it (undefined once
   * compaction dropped it, or beyond the last entry). At 0 it is the log's founding configuration:
   * what a node joining with an empty log must record there for its log to agree with this one. */
  membershipAt(index: Index): Membership | undefined {
    if (index < this.log.firstIndex() - 1 || index > this.log.lastIndex()) return undefined;
    return this.configs.at(index);
  }
  get transferee(): NodeId { return this.transferTarget; }
  /** The latest snapshot point recorded with compact() (or recovered, or received). */
  get latestSnapshot(): SnapshotMeta { return this.snapshot; }
  entries(lo: Index, hi: Index): readonly Entry[] { return this.log.slice(Math.max(lo, this.log.firstIndex()), hi); }
  termAt(index: Index): Term | undefined { return this.log.term(index); }
  /** Leader only: what it knows of each follower's log. */
  followerProgress(): ReadonlyMap<NodeId, { readonly match: Index; readonly next: Index; readonly state: string }> {
    return this.progress;
  }

  // ---- Inputs ----------------------------------------------------------------------------------

  /** Advance logical time by one tick. */
  tick(): void {
    if (this.roleNow === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Feed a message from a peer. Messages addressed to another node are ignored. */
  step(message: Message): void {
    if (message.to !== this.config.id || message.from === this.config.id) return;
    if (!this.stepTerm(message)) return;
    switch (message.type) {
      case 'voteRequest': return this.handleVoteRequest(message);
      case 'voteResponse': return this.handleVoteResponse(message);
      case 'appendRequest': return this.handleAppendRequest(message);
      case 'appendResponse': return this.handleAppendResponse(message);
      case 'heartbeatRequest': return this.handleHeartbeatRequest(message);
      case 'heartbeatResponse': return this.handleHeartbeatResponse(message);
      case 'snapshotRequest': return this.handleSnapshotRequest(message);
      case 'timeoutNow': return this.handleTimeoutNow();
      case 'readIndexRequest': return this.handleReadIndexRequest(message);
      case 'readIndexResponse': return this.handleReadIndexResponse(message);
    }
  }

  /** Propose a client command; on a leader it is appended and replicated. */
  propose(data: Uint8Array): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal !== null) return refusal;
    const sizeBytes = entrySizeBytes({ kind: 'command', term: 0, index: 0, data });
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + sizeBytes > this.config.maxUncommittedBytes) {
      return { ok: false, reason: 'overloaded' };
    }
    return this.appendAsLeader({ kind: 'command', term: this.currentTerm, index: this.log.lastIndex() + 1, data });
  }

  /** Propose one membership change (thesis 4.1): at most one uncommitted at a time, and only once
   * this leader has committed an entry of its own term (thesis 4.1, the fix to the single-server bug). */
  proposeMembershipChange(change: MembershipChange): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal !== null) return refusal;
    if (!this.membershipChangeAllowed()) return { ok: false, reason: 'membershipChangePending' };
    const next = applyMembershipChange(this.configs.current(), change);
    if (typeof next === 'string') return { ok: false, reason: 'invalidMembershipChange', detail: next };
    return this.appendAsLeader({ kind: 'config', term: this.currentTerm, index: this.log.lastIndex() + 1, membership: next });
  }

  /** Ask for a linearizable read point; it arrives as a ReadState carrying `context`. */
  readIndex(context: number): ReadIndexResult {
    if (this.roleNow === 'leader') {
      if (this.reads.isFull()) return { ok: false, reason: 'overloaded' };
      this.acceptRead(this.config.id, context);
      return { ok: true };
    }
    if (this.leader === NO_NODE) return { ok: false, reason: 'noLeader', leaderId: NO_NODE };
    this.send({ type: 'readIndexRequest', from: this.config.id, to: this.leader, term: this.currentTerm, context });
    return { ok: true };
  }

  /** Hand leadership to `to` (or the most up-to-date voter when null), thesis 3.10. */
  transferLeadership(to: NodeId | null): TransferResult {
    if (this.roleNow !== 'leader') return { ok: false, reason: 'not the leader' };
    const target = to ?? this.mostUpToDateFollower();
    if (target === NO_NODE) return { ok: false, reason: 'no other voter to transfer to' };
    if (target === this.config.id) return { ok: true, to: target };
    if (!isVoter(this.configs.current(), target)) return { ok: false, reason: `node ${target} is not a voter` };
    if (this.transferTarget === target) return { ok: true, to: target };
    this.transferTarget = target;
    this.transferElapsed = 0;
    this.emit({ type: 'transferStarted', to: target });
    const progress = this.progressOf(target);
    if (progress.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target, false);
    return { ok: true, to: target };
  }

  /** The runtime holds a snapshot of the state machine at `snapshotIndex` (<= applied). Entries up
   * to `snapshotIndex - keepTailEntries` are dropped; the tail serves slow followers. */
  compact(snapshotIndex: Index, keepTailEntries: number): void {
    invariant(snapshotIndex <= this.log.applied, () => `snapshot at ${snapshotIndex} beyond applied ${this.log.applied}`);
    if (snapshotIndex <= this.snapshot.index) return;
    const term = this.log.term(snapshotIndex);
    invariant(term !== undefined, 'snapshot index is not in the log');
    this.snapshot = { index: snapshotIndex, term, membership: this.configs.at(snapshotIndex) };
    const compactTo = Math.min(snapshotIndex - keepTailEntries, this.log.stableIndex());
    if (compactTo > this.log.firstIndex() - 1) {
      this.log.compactTo(compactTo);
      this.configs.compactTo(compactTo);
    }
  }

  /** The runtime finished (or gave up) sending a snapshot to `to`. */
  reportSnapshotResult(to: NodeId, ok: boolean): void {
    const progress = this.progress.get(to);
    if (this.roleNow !== 'leader' || progress === undefined || progress.state !== 'snapshot') return;
    if (!ok) progress.pendingSnapshot = 0;
    progress.becomeProbe();
    // Wait for the follower's answer (or a heartbeat) before probing again.
    progress.probeSent = true;
  }

  // ---- Ready / advance -------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.inFlight !== null) return false;
    return this.broadcastOwed || this.readRoundOwed
      || this.messagesNow.length > 0 || this.messagesAfterPersist.length > 0
      || this.snapshotToInstall !== null
      || this.log.stableIndex() < this.log.lastIndex()
      || this.log.committed > this.log.applying
      || this.readStates.length > 0 || this.events.length > 0
      || this.hardStateChanged();
  }

  ready(): Ready {
    invariant(this.inFlight === null, 'ready() called again before advance()');
    if (this.broadcastOwed) this.broadcastAppend();
    if (this.readRoundOwed) this.startReadRound();
    const entries = this.log.unstableEntries();
    const committedEntries = this.snapshotToInstall === null || this.log.applying >= this.snapshotToInstall.index
      ? this.log.nextCommitted(MAX_APPLY_BYTES_PER_READY)
      : [];
    const hardState = this.hardStateChanged() ? this.hardStateToPersist() : null;
    const last = entries.length > 0 ? entries[entries.length - 1] : null;
    const ready: Ready = {
      softState: this.softState(),
      hardState,
      entries,
      snapshot: this.snapshotToInstall,
      messagesNow: this.messagesNow,
      messagesAfterPersist: this.messagesAfterPersist,
      committedEntries,
      readStates: this.readStates,
      events: this.events,
    };
    const lastCommitted = committedEntries.length > 0 ? committedEntries[committedEntries.length - 1].index : this.log.applying;
    this.inFlight = { lastEntry: last === null ? null : { index: last.index, term: last.term }, hardState, snapshot: this.snapshotToInstall, lastCommitted };
    if (hardState !== null) this.lastHardState = this.hardState;
    this.log.applying = Math.max(this.log.applying, lastCommitted);
    this.messagesNow = [];
    this.messagesAfterPersist = [];
    this.readStates = [];
    this.events = [];
    return ready;
  }

  /** Everything in the last Ready was done: persisted, sent and applied. */
  advance(): void {
    const done = this.inFlight;
    invariant(done !== null, 'advance() without a Ready in flight');
    this.inFlight = null;
    if (done.snapshot !== null && this.snapshotToInstall === done.snapshot) this.snapshotToInstall = null;
    if (done.lastEntry !== null) this.log.stableTo(done.lastEntry.index, done.lastEntry.term);
    if (done.lastCommitted > this.log.applied) this.log.applied = done.lastCommitted;
    invariant(this.log.applied <= this.log.committed, 'applied beyond committed');
    if (this.roleNow === 'leader') {
      // The leader's own fsync finished: only now does it count itself toward a commit (3.6 of the
      // architecture brief's "persist before you promise").
      this.maybeCommit();
    }
  }

  // ---- Hooks a test may override to build a deliberately broken variant --------------------

  /** Which queue a message goes to: only leader traffic may leave before local persistence. */
  protected route(message: Message): 'now' | 'afterPersist' {
    const leaderTraffic = message.type === 'appendRequest' || message.type === 'heartbeatRequest'
      || message.type === 'snapshotRequest' || message.type === 'timeoutNow' || message.type === 'readIndexResponse';
    return this.roleNow === 'leader' && leaderTraffic ? 'now' : 'afterPersist';
  }

  protected hardStateToPersist(): HardState {
    return this.hardState;
  }

  /** May this node vote for `candidate` in the term it is in (paper 5.2: one vote per term)? */
  protected canGrantVote(request: VoteRequest): boolean {
    return this.votedFor === request.from
      || (this.votedFor === NO_NODE && this.leader === NO_NODE)
      || (request.preVote && request.term > this.currentTerm);
  }

  /** Paper 5.4.2: a leader commits by counting replicas only for entries of its own term. */
  protected canCommitByCounting(index: Index): boolean {
    return this.log.term(index) === this.currentTerm;
  }

  /** The members whose acknowledgements count: voters only, never learners. */
  protected quorumMembers(): NodeId[] {
    return voterIds(this.configs.current());
  }

  /** Thesis 4.1: one change at a time (the previous one committed), and only once this leader has
   * committed an entry of its own term. */
  protected membershipChangeAllowed(): boolean {
    return this.pendingConfigIndex <= this.log.committed && this.committedInCurrentTerm();
  }

  /** Whether a read must wait for a heartbeat round proving this node still leads. */
  protected readNeedsQuorumRound(): boolean {
    return true;
  }

  // ---- Terms and roles -------------------------------------------------------------------------

  /** Common handling of a message's term (paper Figure 2, "Rules for Servers"). Returns whether the
   * message should be processed further. */
  private stepTerm(message: Message): boolean {
    if (message.term > this.currentTerm) {
      if (message.type === 'voteRequest') {
        // Thesis 4.2.3: a server that hears from a leader within the minimum election timeout ignores
        // vote requests, so removed or partitioned servers cannot depose a healthy leader.
        const inLease = this.config.checkQuorum && this.leader !== NO_NODE
          && this.electionElapsed < this.config.electionTimeoutTicksMin;
        if (inLease && !message.transfer) return false;
        if (message.preVote) return true; // a pre-vote changes no state
      }
      if (message.type === 'voteResponse' && message.preVote && message.granted) return true;
      if (message.type === 'readIndexResponse' || message.type === 'readIndexRequest') {
        // Not evidence of a new leader by itself, but a newer term is still a newer term.
        this.becomeFollower(message.term, NO_NODE);
        return message.type === 'readIndexResponse';
      }
      const fromLeader = message.type === 'appendRequest' || message.type === 'heartbeatRequest' || message.type === 'snapshotRequest';
      this.becomeFollower(message.term, fromLeader ? message.from : NO_NODE);
      return true;
    }
    if (message.term < this.currentTerm) {
      if (message.type === 'appendRequest' || message.type === 'heartbeatRequest') {
        // A deposed leader that missed the new term: tell it, so it steps down (with pre-vote it
        // would otherwise never learn, since our pre-votes do not raise its term).
        this.send({ type: 'appendResponse', from: this.config.id, to: message.from, term: this.currentTerm, success: false, matchIndex: 0, conflictIndex: 0, conflictTerm: 0, rejectedIndex: 0 });
      } else if (message.type === 'voteRequest') {
        // Paper Figure 2: reply false with our term, so a candidate that is behind learns of it
        // (without an answer it may never catch up: simulator seed 3664).
        this.send({ type: 'voteResponse', from: this.config.id, to: message.from, term: this.currentTerm, preVote: message.preVote, granted: false });
      }
      return false;
    }
    return true;
  }

  private becomeFollower(term: Term, leader: NodeId, reason = 'saw a newer term'): void {
    const wasLeader = this.roleNow === 'leader';
    if (term !== this.currentTerm) {
      invariant(term > this.currentTerm, 'term went back');
      this.currentTerm = term;
      this.votedFor = NO_NODE;
    }
    this.roleNow = 'follower';
    this.leader = leader;
    this.resetTimers();
    this.votes.clear();
    this.progress.clear();
    this.transferTarget = NO_NODE;
    this.broadcastOwed = false;
    this.uncommittedBytes = 0;
    this.reads.clear();
    this.readRoundOwed = false;
    this.commitBroadcastOwed = false;
    if (wasLeader) this.emit({ type: 'steppedDown', term, reason });
    if (leader !== NO_NODE) this.emit({ type: 'becameFollower', term, leaderId: leader });
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const { electionTimeoutTicksMin: min, electionTimeoutTicksMax: max } = this.config;
    this.randomizedElectionTimeout = min + this.config.random.nextInt(max - min);
  }

  private tickElection(): void {
    this.electionElapsed++;
    // Only a node that campaigns restarts its clock. One that may not campaign (a learner, or a
    // voter whose log does not yet name it one) must let its leader lease run out, or it would
    // ignore every candidate's vote request for ever (found by simulator seed 2230).
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.isPromotable()) {
      this.electionElapsed = 0;
      this.campaign(this.config.preVote ? 'preVote' : 'election');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTimeoutTicksMin) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.quorumActive()) {
        this.stepDown('lost contact with a majority (check-quorum)');
        return;
      }
    }
    if (this.transferTarget !== NO_NODE && ++this.transferElapsed >= this.config.electionTimeoutTicksMin) {
      // The target did not take over within an election timeout: serve again (thesis 3.10).
      this.emit({ type: 'transferAborted', to: this.transferTarget });
      this.transferTarget = NO_NODE;
    }
    if (this.heartbeatElapsed >= this.config.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private stepDown(reason: string): void {
    this.becomeFollower(this.currentTerm, NO_NODE, reason);
  }

  private isPromotable(): boolean {
    return isVoter(this.configs.current(), this.config.id);
  }

  /** Start an election (paper 5.2): a pre-vote round first (thesis 9.6), then the real one; a
   * transfer (thesis 3.10) skips the pre-vote and overrides the followers' leader lease. */
  private campaign(kind: 'preVote' | 'election' | 'transfer'): void {
    const preVote = kind === 'preVote';
    const transfer = kind === 'transfer';
    if (preVote) {
      this.roleNow = 'preCandidate';
      this.leader = NO_NODE;
    } else {
      this.currentTerm += 1;
      this.votedFor = this.config.id;
      this.roleNow = 'candidate';
      this.leader = NO_NODE;
    }
    this.votes.clear();
    this.resetTimers();
    const term = preVote ? this.currentTerm + 1 : this.currentTerm;
    this.emit({ type: 'electionStarted', term, preVote });
    this.votes.set(this.config.id, true);
    if (this.tallyVotes()) return;
    for (const id of this.quorumMembers()) {
      if (id === this.config.id) continue;
      this.send({
        type: 'voteRequest', from: this.config.id, to: id, term, preVote,
        lastLogIndex: this.log.lastIndex(), lastLogTerm: this.log.lastTerm(), transfer,
      });
    }
  }

  /** Count the votes; act on a decided election. Returns whether it was decided. */
  private tallyVotes(): boolean {
    const outcome = voteOutcome(this.quorumMembers(), this.votes);
    if (outcome === 'pending') return false;
    if (outcome === 'lost') {
      this.becomeFollower(this.currentTerm, NO_NODE);
    } else if (this.roleNow === 'preCandidate') {
      this.campaign('election');
    } else {
      this.becomeLeader();
    }
    return true;
  }

  private becomeLeader(): void {
    invariant(this.roleNow === 'candidate', 'only a candidate becomes leader');
    this.roleNow = 'leader';
    this.leader = this.config.id;
    this.resetTimers();
    this.progress.clear();
    for (const id of memberIds(this.configs.current())) this.addProgress(id);
    this.pendingConfigIndex = this.configs.currentIndex();
    this.uncommittedBytes = 0;
    this.emit({ type: 'becameLeader', term: this.currentTerm });
    // Paper 8: a no-op at the start of the term lets the leader commit what earlier terms left.
    this.appendAsLeader({ kind: 'noop', term: this.currentTerm, index: this.log.lastIndex() + 1 });
  }

  private addProgress(id: NodeId): void {
    if (id === this.config.id || this.progress.has(id)) return;
    const progress = new Progress(this.log.lastIndex() + 1, this.config.maxInflightAppends);
    progress.recentActive = true;
    this.progress.set(id, progress);
  }

  // ---- Votes -------------------------------------------------------------------------------

  private handleVoteRequest(request: VoteRequest): void {
    const granted = this.canGrantVote(request) && this.log.isUpToDate(request.lastLogIndex, request.lastLogTerm);
    if (granted && !request.preVote) {
      this.votedFor = request.from;
      this.electionElapsed = 0;
    }
    if (!granted) this.emit({ type: 'voteRejected', term: this.currentTerm, candidate: request.from });
    this.send({
      type: 'voteResponse', from: this.config.id, to: request.from,
      term: granted ? request.term : this.currentTerm, preVote: request.preVote, granted,
    });
  }

  private handleVoteResponse(response: VoteResponse): void {
    const expecting = (this.roleNow === 'preCandidate' && response.preVote) || (this.roleNow === 'candidate' && !response.preVote);
    if (!expecting) return;
    this.votes.set(response.from, response.granted);
    this.tallyVotes();
  }

  private handleTimeoutNow(): void {
    if (this.isPromotable()) this.campaign('transfer');
  }

  // ---- Replication: follower side ----------------------------------------------------------

  private hearFromLeader(from: NodeId): void {
    if (this.roleNow !== 'follower') this.becomeFollower(this.currentTerm, from);
    if (this.leader !== from) {
      this.leader = from;
      this.emit({ type: 'becameFollower', term: this.currentTerm, leaderId: from });
    }
    this.electionElapsed = 0;
  }

  private handleAppendRequest(request: AppendRequest): void {
    this.hearFromLeader(request.from);
    const reply = (fields: Pick<AppendResponse, 'success' | 'matchIndex' | 'conflictIndex' | 'conflictTerm'>): void =>
      this.send({ type: 'appendResponse', from: this.config.id, to: request.from, term: this.currentTerm, rejectedIndex: request.prevLogIndex, ...fields });
    if (request.prevLogIndex < this.log.committed) {
      // Everything up to our commit index matches the leader's log already.
      const alreadyHeld = request.prevLogIndex + request.entries.length;
      if (alreadyHeld <= this.log.committed) {
        reply({ success: true, matchIndex: this.log.committed, conflictIndex: 0, conflictTerm: 0 });
        return;
      }
    }
    const result = this.log.tryAppend(request.prevLogIndex, request.prevLogTerm, request.entries);
    if (result === null) {
      const hint = this.log.conflictHint(Math.min(request.prevLogIndex, this.log.lastIndex()), request.prevLogTerm);
      this.emit({ type: 'appendRejected', term: this.currentTerm, from: request.from });
      reply({ success: false, matchIndex: 0, conflictIndex: hint.index, conflictTerm: hint.term });
      return;
    }
    if (result.writtenFrom !== 0) this.recordConfigEntries(result.writtenFrom);
    this.log.commitTo(Math.min(request.leaderCommit, result.matchIndex));
    reply({ success: true, matchIndex: result.matchIndex, conflictIndex: 0, conflictTerm: 0 });
  }

  /** Entries from `from` on were (re)written: the membership follows the log (thesis 4.1). */
  private recordConfigEntries(from: Index): void {
    const before = this.configs.current();
    this.configs.truncateFrom(from);
    for (let index = from; index <= this.log.lastIndex(); index++) {
      const entry = this.log.entryAt(index);
      if (entry?.kind === 'config') this.configs.appended(entry.index, entry.term, entry.membership);
    }
    const after = this.configs.current();
    if (after !== before) this.emit({ type: 'membershipChanged', index: this.configs.currentIndex(), membership: after });
  }

  private handleHeartbeatRequest(request: HeartbeatRequest): void {
    this.hearFromLeader(request.from);
    // The leader sends min(its commit, our match): everything up to it is in our log and matches.
    if (request.commitIndex <= this.log.lastIndex()) this.log.commitTo(request.commitIndex);
    this.send({ type: 'heartbeatResponse', from: this.config.id, to: request.from, term: this.currentTerm, context: request.context });
  }

  private handleSnapshotRequest(request: SnapshotRequest): void {
    this.hearFromLeader(request.from);
    const snapshot = request.snapshot;
    const reply = (matchIndex: Index): void => this.send({
      type: 'appendResponse', from: this.config.id, to: request.from, term: this.currentTerm,
      success: true, matchIndex, conflictIndex: 0, conflictTerm: 0, rejectedIndex: 0,
    });
    if (snapshot.index <= this.log.committed) {
      reply(this.log.committed);
      return;
    }
    if (this.log.matchTerm(snapshot.index, snapshot.term)) {
      // We hold the entry the snapshot ends with, so the log is fine: just learn the commit.
      this.log.commitTo(snapshot.index);
      reply(snapshot.index);
      return;
    }
    this.log.restore(snapshot);
    this.configs.reset(snapshot.index, snapshot.membership);
    this.snapshot = snapshot;
    this.snapshotToInstall = snapshot;
    this.emit({ type: 'snapshotInstalled', index: snapshot.index, term: snapshot.term });
    this.emit({ type: 'membershipChanged', index: snapshot.index, membership: snapshot.membership });
    reply(snapshot.index);
  }

  // ---- Replication: leader side ------------------------------------------------------------

  private refuseProposal(): ProposeResult | null {
    if (this.roleNow !== 'leader') return { ok: false, reason: 'notLeader', leaderId: this.leader };
    if (this.transferTarget !== NO_NODE) return { ok: false, reason: 'transferring', leaderId: this.config.id };
    return null;
  }

  private appendAsLeader(entry: Entry): ProposeResult {
    invariant(this.roleNow === 'leader', 'only a leader appends');
    this.log.append([entry]);
    this.uncommittedBytes += entrySizeBytes(entry);
    if (entry.kind === 'config') {
      this.configs.appended(entry.index, entry.term, entry.membership);
      this.pendingConfigIndex = entry.index;
      this.onMembershipAppended();
    }
    this.broadcastOwed = true;
    // A lone voter commits on its own fsync; advance() will notice.
    return { ok: true, index: entry.index, term: entry.term };
  }

  private onMembershipAppended(): void {
    const membership = this.configs.current();
    for (const id of memberIds(membership)) this.addProgress(id);
    for (const id of [...this.progress.keys()]) {
      if (!memberIds(membership).includes(id)) this.progress.delete(id);
    }
    this.emit({ type: 'membershipChanged', index: this.configs.currentIndex(), membership });
  }

  private progressOf(id: NodeId): Progress {
    const progress = this.progress.get(id);
    invariant(progress !== undefined, () => `no progress for ${id}`);
    return progress;
  }

  private broadcastAppend(): void {
    const commitOwed = this.commitBroadcastOwed;
    this.broadcastOwed = false;
    this.commitBroadcastOwed = false;
    for (const [id, progress] of this.progress) this.sendAppend(id, commitOwed && this.owesCommitNow(progress));
  }

  /**
   * Whether a follower must get an empty append just to learn the new commit index. Not when it
   * was told already, and not while appends to it are in flight: its answer to them comes back
   * within a round trip and sends what it lacks, commit included (handleAppendResponse). Under
   * load that halves the leader's messages (measured: 37% of its appends were empty commit-only
   * ones, each costing a write, a follower Ready and an answer). Heartbeats carry the commit too.
   */
  private owesCommitNow(progress: Progress): boolean {
    return progress.state === 'replicate' && !progress.hasInflight && progress.commitSent < this.log.committed;
  }

  /** Send `to` the entries it lacks (or an empty append when `evenIfEmpty`), or a snapshot. */
  private sendAppend(to: NodeId, evenIfEmpty: boolean): void {
    const progress = this.progressOf(to);
    if (progress.isPaused()) return;
    const prevLogIndex = progress.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      this.sendSnapshot(to, progress);
      return;
    }
    const entries = progress.next <= this.log.lastIndex()
      ? this.log.slice(progress.next, this.log.lastIndex(), this.config.maxAppendBytes, this.config.maxAppendEntries)
      : [];
    if (entries.length === 0 && !evenIfEmpty && progress.state === 'replicate') return;
    if (entries.length === 0 && !evenIfEmpty && progress.match === this.log.lastIndex()) return;
    this.send({
      type: 'appendRequest', from: this.config.id, to, term: this.currentTerm,
      prevLogIndex, prevLogTerm, entries, leaderCommit: this.log.committed,
    });
    progress.sentAppend(prevLogIndex + entries.length, entries.length);
    progress.commitSent = this.log.committed;
  }

  private sendSnapshot(to: NodeId, progress: Progress): void {
    invariant(this.snapshot.index >= this.log.firstIndex() - 1, 'the log was compacted past the latest snapshot');
    this.send({ type: 'snapshotRequest', from: this.config.id, to, term: this.currentTerm, snapshot: this.snapshot });
    progress.becomeSnapshot(this.snapshot.index);
  }

  private broadcastHeartbeat(): void {
    const context = this.reads.latestRound();
    for (const [id, progress] of this.progress) {
      this.send({
        type: 'heartbeatRequest', from: this.config.id, to: id, term: this.currentTerm,
        commitIndex: Math.min(progress.match, this.log.committed), context,
      });
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.config.id, to, term: this.currentTerm });
  }

  private handleAppendResponse(response: AppendResponse): void {
    if (this.roleNow !== 'leader') return;
    const progress = this.progress.get(response.from);
    if (progress === undefined) return;
    progress.recentActive = true;
    if (!response.success) {
      if (response.rejectedIndex === 0 && response.matchIndex === 0 && response.conflictIndex === 0) return;
      // Fast backtracking (thesis 5.3 style): jump over the whole conflicting term at once.
      const hint = response.conflictTerm > 0
        ? this.log.conflictHint(response.conflictIndex, response.conflictTerm).index
        : response.conflictIndex;
      if (progress.rejected(response.rejectedIndex, hint)) this.sendAppend(response.from, true);
      return;
    }
    invariant(response.matchIndex <= this.log.lastIndex(), () => `follower ${response.from} claims match ${response.matchIndex} beyond our last index ${this.log.lastIndex()}`);
    const wasPaused = progress.isPaused();
    const learned = progress.acknowledge(response.matchIndex);
    if (progress.state === 'probe' && progress.match >= progress.next - 1) progress.becomeReplicate();
    else if (progress.state === 'snapshot' && progress.match >= progress.pendingSnapshot) {
      progress.becomeProbe();
      progress.becomeReplicate();
    }
    if (learned) this.maybeCommit();
    if (this.roleNow !== 'leader') return;
    if (learned || wasPaused) this.sendAppend(response.from, false);
    // The commit this answer may have advanced, for a follower that was skipped by the broadcast
    // because this append was in flight (owesCommitNow).
    if (this.owesCommitNow(progress)) this.sendAppend(response.from, true);
    if (response.from === this.transferTarget && progress.match === this.log.lastIndex()) {
      this.sendTimeoutNow(response.from);
    }
  }

  private handleHeartbeatResponse(response: HeartbeatResponse): void {
    if (this.roleNow !== 'leader') return;
    const progress = this.progress.get(response.from);
    if (progress === undefined) return;
    progress.heardFrom();
    // An empty append probes past anything lost in flight: the follower rejects it if it has a gap.
    if (progress.match < this.log.lastIndex()) this.sendAppend(response.from, true);
    if (this.quorumMembers().includes(response.from)) {
      const released = this.reads.acknowledge(response.from, response.context, this.quorumMembers(), this.config.id);
      for (const read of released) this.releaseRead(read.from, read.context, read.index);
      this.startReadRoundIfNeeded();
    }
  }

  /** Advance the commit index to what a majority of voters hold (paper 5.3, 5.4.2). */
  private maybeCommit(): void {
    if (this.roleNow !== 'leader') return;
    const selfStable = this.log.stableIndex();
    const candidate = quorumIndex(this.quorumMembers(), (id) => id === this.config.id ? selfStable : (this.progress.get(id)?.match ?? 0));
    if (candidate <= this.log.committed || !this.canCommitByCounting(candidate)) return;
    const before = this.log.committed;
    this.log.commitTo(candidate);
    this.onCommitted(before);
  }

  private onCommitted(previousCommit: Index): void {
    for (let index = previousCommit + 1; index <= this.log.committed; index++) {
      const entry = this.log.entryAt(index);
      if (entry !== undefined && entry.term === this.currentTerm) this.uncommittedBytes -= entrySizeBytes(entry);
    }
    if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
    // The first commit of this term makes waiting reads servable (thesis 6.4, step 1).
    this.reads.termCommitted(this.log.committed);
    this.startReadRoundIfNeeded();
    // A leader removed by a change it committed steps down (thesis 4.2.2).
    if (this.pendingConfigIndex <= this.log.committed && !isVoter(this.configs.current(), this.config.id)) {
      this.stepDown('removed from the cluster');
      return;
    }
    this.broadcastOwed = true;
    this.commitBroadcastOwed = true;
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.currentTerm;
  }

  private quorumActive(): boolean {
    const active = hasQuorum(this.quorumMembers(), (id) => id === this.config.id || this.progress.get(id)?.recentActive === true);
    for (const progress of this.progress.values()) progress.recentActive = false;
    return active;
  }

  private mostUpToDateFollower(): NodeId {
    let best = NO_NODE;
    let bestMatch = -1;
    for (const id of this.quorumMembers()) {
      if (id === this.config.id) continue;
      const match = this.progress.get(id)?.match ?? 0;
      if (match > bestMatch) { best = id; bestMatch = match; }
    }
    return best;
  }

  // ---- ReadIndex (thesis 6.4) ----------------------------------------------------------------

  private acceptRead(from: NodeId, context: number): void {
    if (!this.committedInCurrentTerm()) {
      this.reads.awaitTermCommit(from, context);
      return;
    }
    // A lone voter is its own majority, but only if that voter is this leader: a leader that
    // appended its own removal may still lead while the one voter left is another node.
    const voters = this.quorumMembers();
    if (!this.readNeedsQuorumRound() || (voters.length === 1 && voters[0] === this.config.id)) {
      this.releaseRead(from, context, this.log.committed);
      return;
    }
    this.reads.enqueue(from, context, this.log.committed);
    this.readRoundOwed = true;
  }

  private startReadRoundIfNeeded(): void {
    if (this.roleNow === 'leader' && this.reads.wantsRound()) this.readRoundOwed = true;
  }

  private startReadRound(): void {
    this.readRoundOwed = false;
    if (this.roleNow !== 'leader' || !this.reads.wantsRound()) return;
    const context = this.reads.startRound();
    // A lone voter is its own majority: the round is confirmed now (reads that waited for the
    // term's first commit come through here; no heartbeat answer would ever count for them).
    const confirmed = this.reads.confirmedBySelf(this.quorumMembers(), this.config.id);
    for (const read of confirmed) this.releaseRead(read.from, read.context, read.index);
    if (confirmed.length > 0) return;
    for (const [id, progress] of this.progress) {
      if (!this.quorumMembers().includes(id)) continue;
      this.send({
        type: 'heartbeatRequest', from: this.config.id, to: id, term: this.currentTerm,
        commitIndex: Math.min(progress.match, this.log.committed), context,
      });
    }
  }

  private releaseRead(from: NodeId, context: number, index: Index): void {
    if (from === this.config.id) this.readStates.push({ context, index });
    else this.send({ type: 'readIndexResponse', from: this.config.id, to: from, term: this.currentTerm, context, readIndex: index });
  }

  private handleReadIndexRequest(request: ReadIndexRequest): void {
    if (this.roleNow !== 'leader' || this.reads.isFull()) {
      this.send({ type: 'readIndexResponse', from: this.config.id, to: request.from, term: this.currentTerm, context: request.context, readIndex: 0 });
      return;
    }
    this.acceptRead(request.from, request.context);
  }

  private handleReadIndexResponse(response: ReadIndexResponse): void {
    if (response.readIndex > 0) this.readStates.push({ context: response.context, index: response.readIndex });
  }

  // ---- Plumbing ----------------------------------------------------------------------------

  protected send(message: Message): void {
    if (this.route(message) === 'now') this.messagesNow.push(message);
    else this.messagesAfterPersist.push(message);
  }

  private emit(event: RaftEvent): void {
    this.events.push(event);
  }

  private softState(): SoftState {
    return { role: this.roleNow, leaderId: this.leader, term: this.currentTerm };
  }

  private hardStateChanged(): boolean {
    const last = this.lastHardState;
    return last.term !== this.currentTerm || last.votedFor !== this.votedFor || last.commitIndex !== this.log.committed;
  }
}
