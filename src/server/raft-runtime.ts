// Drives the pure Raft core with real clocks, disk and sockets: ticks from a timer, messages from
// the transport, proposals from the API; each Ready is handled exactly as the core's contract says
// (send leader traffic, persist with one fsync, send acknowledgements, apply, advance).

import { randomInt } from 'node:crypto';
import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { encodeCommand, type KvCommand } from '../kvstore/commands.js';
import type { CommandResult, KvStateMachine } from '../kvstore/state-machine.js';
import { RaftNode } from '../raft/node.js';
import { findMember } from '../raft/membership.js';
import {
  defaultRaftConfig, type Entry, type HardState, type Index, type Membership, type MembershipChange, type Message,
  type NodeId, type RaftEvent, type RaftInitialState, type Ready, type Role, type SnapshotRequest,
} from '../raft/types.js';
import type { RaftLogStore } from '../storage/wal.js';
import { DiskFullError } from '../storage/wal.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { msToTicks, type NodeConfig } from './node-config.js';
import { readsToAskAgain, type RetriableRead } from './read-retry.js';
import { TickClock } from './tick-clock.js';
import { SnapshotPolicy } from './snapshot-policy.js';
import { StorageUpkeep } from './storage-upkeep.js';

interface PendingProposal {
  readonly term: number;
  readonly resolve: (result: CommandResult) => void;
  readonly reject: (error: ApiError) => void;
  readonly timer: NodeJS.Timeout;
}

interface PendingConfigChange {
  readonly term: number;
  readonly resolve: (index: Index) => void;
  readonly reject: (error: ApiError) => void;
  readonly timer: NodeJS.Timeout;
}

/** The core refused a proposal because this node does not lead, or is handing leadership over:
 * nothing was proposed, so the caller may take the request to the leader. */
export class NotLeaderError extends ApiError {
  constructor(readonly transferring: boolean) {
    super('NO_LEADER', transferring
      ? 'This node is handing leadership over; the request was not proposed.'
      : 'This node is not the leader; the request was not proposed.');
  }
}

/** Why this node stopped taking part: a committed membership without it. */
export interface Removal {
  /** The index of the configuration that removed it (0 when learned from the leader's status). */
  readonly index: Index;
  readonly how: string;
}

interface PendingRead extends RetriableRead {
  index: Index;
  readonly resolve: () => void;
  readonly reject: (error: ApiError) => void;
  readonly timer: NodeJS.Timeout;
}

export interface RuntimeDependencies {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly wal: RaftLogStore;
  readonly kv: KvStateMachine;
  readonly transport: PeerTransport;
  readonly initial: RaftInitialState;
  /** The membership in force at the initial applied index (what the state machine reflects). */
  readonly appliedMembership: Membership;
  /** Called when the node can no longer be trusted to run (failed fsync, broken invariant). */
  readonly onFatal: (error: Error) => void;
  /** Called once when a committed membership no longer holds this node; the runtime has stopped. */
  readonly onRemoved?: (removal: Removal) => void;
}

export interface NodeStatus {
  readonly nodeId: NodeId;
  readonly state: 'leader' | 'follower' | 'candidate';
  readonly term: number;
  readonly leader: NodeId;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  readonly snapshotIndex: Index;
  readonly revision: number;
  readonly membership: Membership;
  /** The index of the entry that set `membership`; it is in force once committed. */
  readonly membershipIndex: Index;
  readonly diskFull: boolean;
  readonly followers?: readonly { readonly id: NodeId; readonly matchIndex: Index; readonly lag: number; readonly state: string }[];
}

/** How often a node whose disk is full tries its write again. */
const DISK_FULL_RETRY_MS = 1000;

export class RaftRuntime {
  readonly node: RaftNode;
  private readonly config: NodeConfig;
  private readonly logger: Logger;
  private readonly wal: RaftLogStore;
  private readonly kv: KvStateMachine;
  private readonly transport: PeerTransport;
  private readonly onFatal: (error: Error) => void;
  private readonly onRemoved: ((removal: Removal) => void) | undefined;
  private readonly proposals = new Map<Index, PendingProposal>();
  private readonly configChanges = new Map<Index, PendingConfigChange>();
  /** When a Raft message last arrived from each peer (ms, monotonic): a member's liveness. */
  private readonly lastHeardMs = new Map<NodeId, number>();
  /** Whether the membership the state machine has applied up to holds this node. */
  private appliedIncludesSelf: boolean;
  private removal: Removal | null = null;
  private readonly reads = new Map<number, PendingRead>();
  private readonly waitingForLeader = new Set<() => void>();
  private readonly snapshotsSending = new Set<NodeId>();
  private nextReadContext = 1;
  private tickTimer: NodeJS.Timeout | null = null;
  private readyScheduled = false;
  private processing = false;
  private stopped = false;
  private diskFull = false;
  private installingSnapshot = false;
  /** The engine flush maybeCompact() started, while it runs. */
  private engineSync: Promise<void> | null = null;
  /** An applied index the engine holds durably, waiting for the loop to compact the log to it. */
  private engineDurableIndex: { readonly index: Index; readonly reason: string } | null = null;
  private lastRole: Role = 'follower';
  /** The term and vote the log holds durably: a hard state that changes neither is commit-only. */
  private syncedTermVote: { readonly term: number; readonly votedFor: NodeId };
  /** The newest hard state of a Ready that only moved the commit index, not written yet: it goes
   * with the next write (see handleReady). */
  private unsavedHardState: HardState | null = null;
  private lastLeader: NodeId = 0;
  /** When maybeCompact() records a snapshot point (entries or log bytes). */
  private readonly snapshotPolicy: SnapshotPolicy;
  /** History retention, replica hash checkpoints, idle maintenance (storage-upkeep.ts). */
  private readonly upkeep: StorageUpkeep;

  constructor(deps: RuntimeDependencies) {
    this.config = deps.config;
    this.logger = deps.logger;
    this.wal = deps.wal;
    this.kv = deps.kv;
    this.transport = deps.transport;
    this.onFatal = deps.onFatal;
    this.onRemoved = deps.onRemoved;
    this.appliedIncludesSelf = findMember(deps.appliedMembership, deps.config.nodeId) !== undefined;
    this.syncedTermVote = { term: deps.initial.hardState.term, votedFor: deps.initial.hardState.votedFor };
    const { config } = deps;
    const raftConfig = {
      ...defaultRaftConfig(config.nodeId, { nextInt: (max: number) => randomInt(max) }),
      electionTimeoutTicksMin: msToTicks(config.electionTimeoutMsMin, config.tickMs),
      electionTimeoutTicksMax: msToTicks(config.electionTimeoutMsMax, config.tickMs),
      heartbeatIntervalTicks: msToTicks(config.heartbeatIntervalMs, config.tickMs),
    };
    this.node = new RaftNode(raftConfig, deps.initial);
    // A batched engine commit that fails on its timer is a failed flush: the node stops.
    this.kv.onEngineFailure((error) => this.fail(new Error(`the state machine engine failed to commit: ${error.message}`, { cause: error })));
    this.snapshotPolicy = new SnapshotPolicy(config);
    this.upkeep = new StorageUpkeep({
      nodeId: config.nodeId,
      historyRetentionRevisions: config.historyRetentionRevisions,
      replicaHashEveryRevisions: config.replicaHashEveryRevisions,
      logger: this.logger,
      kv: this.kv,
      isLeader: () => this.node.role === 'leader' && !this.stopped,
      busy: () => this.processing || this.installingSnapshot || this.stopped,
      propose: (command) => this.propose(command, config.requestTimeoutMs),
    });
  }

  start(): void {
    // Ticks missed by a late timer are replayed, up to one heartbeat interval's worth per callback
    // (tick-clock.ts): a busy leader keeps its heartbeat rate, and after a long stall no burst of
    // ticks fires an election the cluster does not need before the waiting messages are read.
    const clock = new TickClock(this.config.tickMs, msToTicks(this.config.heartbeatIntervalMs, this.config.tickMs), performance.now());
    this.tickTimer = setInterval(() => this.guard(() => {
      const ticks = clock.due(performance.now());
      if (ticks === 0) return;
      for (let i = 0; i < ticks; i++) this.node.tick();
      this.askReadsAgain();
      this.scheduleReady();
    }), this.config.tickMs);
    this.upkeep.start();
    this.scheduleReady();
  }

  // ---- Inputs from the transport -------------------------------------------------------------

  onMessage(message: Message): void {
    if (this.stopped) return;
    this.lastHeardMs.set(message.from, performance.now());
    this.guard(() => this.node.step(message));
    this.scheduleReady();
  }

  /** A leader streams us a snapshot: install it in the state machine, then let the core adopt it. */
  async onSnapshot(request: SnapshotRequest, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const needed = request.snapshot.index > this.node.commitIndex && request.snapshot.index > this.kv.appliedIndex;
    if (!needed || this.installingSnapshot) {
      for await (const chunk of chunks) void chunk; // we hold that state already: drain, let the core reply
    } else {
      // No entry may be applied to the engine while its state is being replaced: an entry applied
      // to the old state during the import would vanish when the new state is swapped in.
      this.installingSnapshot = true;
      try {
        while (this.processing) await new Promise((resolve) => setTimeout(resolve, 1));
        await this.settleEngineSync();
        this.engineDurableIndex = null; // a point in the state being replaced
        const installed = await this.kv.importSnapshot(chunks);
        this.logger.info('snapshot installed', { index: request.snapshot.index, term: request.snapshot.term, dataAppliedIndex: installed.appliedIndex, revision: installed.revision });
      } finally {
        this.installingSnapshot = false;
      }
    }
    this.onMessage(request);
  }

  // ---- Client operations ---------------------------------------------------------------------

  /** Propose a command on this node, which must lead; resolves with its result once applied. */
  propose(command: KvCommand, timeoutMs: number): Promise<CommandResult> {
    if (this.stopped) return Promise.reject(new ApiError('SHUTTING_DOWN'));
    if (this.diskFull) return Promise.reject(new ApiError('DISK_FULL'));
    const result = this.node.propose(encodeCommand(command));
    if (!result.ok) {
      switch (result.reason) {
        case 'overloaded': return Promise.reject(new ApiError('OVERLOADED', 'Too many uncommitted writes; retry later.', 1));
        default: return Promise.reject(new NotLeaderError(result.reason === 'transferring'));
      }
    }
    this.scheduleReady();
    return new Promise<CommandResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.proposals.delete(result.index);
        reject(new ApiError('OUTCOME_UNKNOWN', 'The write was proposed but did not commit in time; retry with the same client id and sequence number.'));
      }, timeoutMs);
      this.proposals.set(result.index, { term: result.term, resolve, reject, timer });
    });
  }

  /**
   * Propose one membership change on this node, which must lead; resolves with the index of its
   * configuration entry once that entry is applied (committed by the voters that count).
   */
  proposeMembershipChange(change: MembershipChange, timeoutMs: number): Promise<Index> {
    if (this.stopped) return Promise.reject(new ApiError('SHUTTING_DOWN'));
    if (this.diskFull) return Promise.reject(new ApiError('DISK_FULL'));
    let result;
    try {
      result = this.node.proposeMembershipChange(change);
    } catch (error) {
      this.fail(error as Error);
      return Promise.reject(new ApiError('INTERNAL'));
    }
    if (!result.ok) {
      switch (result.reason) {
        case 'membershipChangePending': return Promise.reject(new ApiError('CONFLICT', 'Another membership change is in progress; retry once it is done.'));
        case 'invalidMembershipChange': return Promise.reject(new ApiError(result.detail.endsWith('is not a member') ? 'NOT_FOUND' : 'BAD_REQUEST', `Refused: ${result.detail}.`));
        case 'overloaded': return Promise.reject(new ApiError('OVERLOADED'));
        default: return Promise.reject(new NotLeaderError(result.reason === 'transferring'));
      }
    }
    this.logger.info('membership change proposed', { change, index: result.index, term: result.term });
    this.scheduleReady();
    return new Promise<Index>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.configChanges.delete(result.index);
        reject(new ApiError('OUTCOME_UNKNOWN', 'The membership change was proposed but did not commit in time; check GET /cluster/members.'));
      }, timeoutMs);
      this.configChanges.set(result.index, { term: result.term, resolve, reject, timer });
    });
  }

  /** Whether a Raft message from `id` arrived within the last `windowMs` (this node counts as live). */
  heardFromWithin(id: NodeId, windowMs: number): boolean {
    if (id === this.config.nodeId) return true;
    const last = this.lastHeardMs.get(id);
    return last !== undefined && performance.now() - last <= windowMs;
  }

  /** Milliseconds since a Raft message last arrived from `id` (Infinity if never). */
  silenceMs(id: NodeId): number {
    const last = this.lastHeardMs.get(id);
    return last === undefined ? Infinity : performance.now() - last;
  }

  get removed(): Removal | null {
    return this.removal;
  }

  /**
   * This node is no longer a member (a committed configuration without it): stop taking part at
   * once (no ticks, no messages, no votes), say so, and let the process take itself down.
   */
  markRemoved(removal: Removal): void {
    if (this.removal !== null) return;
    this.removal = removal;
    this.logger.warn('this node was removed from the cluster: it stops taking part', { index: removal.index, how: removal.how });
    void this.stop().then(() => this.onRemoved?.(removal));
  }

  /** Resolves once this node's state machine may serve a linearizable read (thesis 6.4). */
  linearizableBarrier(timeoutMs: number): Promise<void> {
    if (this.stopped) return Promise.reject(new ApiError('SHUTTING_DOWN'));
    const context = this.nextReadContext++;
    const accepted = this.node.readIndex(context);
    if (!accepted.ok) {
      if (accepted.reason === 'overloaded') return Promise.reject(new ApiError('OVERLOADED'));
      return Promise.reject(new ApiError('NO_LEADER'));
    }
    this.scheduleReady();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(context);
        reject(new ApiError('NO_QUORUM', 'Could not confirm a read index with a majority in time; the read was not served.'));
      }, timeoutMs);
      this.reads.set(context, { index: -1, askedAtMs: performance.now(), resolve, reject, timer });
    });
  }

  /** Wait up to `timeoutMs` for some leader to be known. */
  waitForLeader(timeoutMs: number): Promise<NodeId> {
    if (this.node.leaderId !== 0) return Promise.resolve(this.node.leaderId);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waitingForLeader.delete(done);
        resolve(this.node.leaderId);
      };
      const timer = setTimeout(done, timeoutMs);
      this.waitingForLeader.add(done);
    });
  }

  status(): NodeStatus {
    const node = this.node;
    const role = node.role === 'preCandidate' ? 'candidate' : node.role;
    const followers = role === 'leader'
      ? [...node.followerProgress()].map(([id, progress]) => ({ id, matchIndex: progress.match, lag: node.lastIndex - progress.match, state: progress.state }))
      : undefined;
    return {
      nodeId: this.config.nodeId,
      state: role,
      term: node.term,
      leader: node.leaderId,
      commitIndex: node.commitIndex,
      appliedIndex: node.appliedIndex,
      lastIndex: node.lastIndex,
      snapshotIndex: node.latestSnapshot.index,
      revision: this.kv.revision,
      membership: node.membership,
      membershipIndex: node.membershipIndex,
      diskFull: this.diskFull,
      ...(followers ? { followers } : {}),
    };
  }

  get stateMachine(): KvStateMachine {
    return this.kv;
  }

  get storageUpkeep(): StorageUpkeep {
    return this.upkeep;
  }

  /** Leader: hand leadership to an up-to-date follower, waiting at most `timeoutMs`. */
  async transferLeadershipAway(timeoutMs: number): Promise<boolean> {
    if (this.node.role !== 'leader') return true;
    const started = this.node.transferLeadership(null);
    if (!started.ok) return false;
    this.scheduleReady();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, this.config.tickMs));
      if (this.node.role !== 'leader') return true;
    }
    return false;
  }

  /**
   * Leader: hand leadership to `to` (or the most up-to-date voter when null), thesis 3.10. Resolves
   * with the new leader's id once one is known; TRANSFER_FAILED when the target did not take over.
   */
  async transferLeadership(to: NodeId | null, timeoutMs: number): Promise<NodeId> {
    if (this.stopped) throw new ApiError('SHUTTING_DOWN');
    if (this.node.role !== 'leader') throw new NotLeaderError(false);
    const started = this.node.transferLeadership(to);
    if (!started.ok) throw new ApiError('BAD_REQUEST', `Cannot transfer leadership: ${started.reason}.`);
    if (started.to === this.config.nodeId) return started.to;
    this.logger.info('leadership transfer started', { to: started.to, term: this.node.term });
    this.scheduleReady();
    const deadline = performance.now() + timeoutMs;
    const term = this.node.term;
    while (performance.now() < deadline && !this.stopped) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.config.tickMs, 5)));
      if (this.node.term > term && this.node.leaderId !== 0 && this.node.leaderId !== this.config.nodeId) return this.node.leaderId;
      if (this.node.role === 'leader' && this.node.transferee === 0) break;
    }
    if (this.node.role !== 'leader') {
      // It stepped down; the new leader is not known yet. Say who it was handed to.
      return started.to;
    }
    throw new ApiError('TRANSFER_FAILED', `Node ${started.to} did not take over leadership in time; node ${this.config.nodeId} still leads.`, 1);
  }

  /** Stop ticking and answering; pending requests fail with SHUTTING_DOWN or OUTCOME_UNKNOWN. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.upkeep.stop();
    while (this.processing) await new Promise((resolve) => setTimeout(resolve, 1));
    await this.settleEngineSync().catch(() => {}); // its failure was reported by fail()
    for (const [index, proposal] of this.proposals) {
      clearTimeout(proposal.timer);
      proposal.reject(new ApiError('OUTCOME_UNKNOWN', 'The node shut down before the write was known to commit.'));
      this.proposals.delete(index);
    }
    for (const [context, read] of this.reads) {
      clearTimeout(read.timer);
      read.reject(new ApiError('SHUTTING_DOWN'));
      this.reads.delete(context);
    }
    for (const [index, change] of this.configChanges) {
      clearTimeout(change.timer);
      change.reject(new ApiError('OUTCOME_UNKNOWN', 'The node shut down before the membership change was known to commit.'));
      this.configChanges.delete(index);
    }
  }

  // ---- The Ready loop --------------------------------------------------------------------------

  private scheduleReady(): void {
    if (this.readyScheduled || this.stopped) return;
    this.readyScheduled = true;
    setImmediate(() => {
      this.readyScheduled = false;
      void this.processReadies();
    });
  }

  private async processReadies(): Promise<void> {
    if (this.processing || this.stopped || this.installingSnapshot) return;
    this.processing = true;
    try {
      while (!this.stopped && !this.diskFull) {
        if (this.node.hasReady()) await this.handleReady(this.node.ready());
        else if (this.engineDurableIndex !== null) await this.maybeCompact();
        else break;
      }
    } catch (error) {
      this.fail(error as Error);
    } finally {
      this.processing = false;
    }
  }

  private async handleReady(ready: Ready): Promise<void> {
    this.observe(ready);
    // Appends that carry no entries only tell followers a new commit index: they are queued after
    // this Ready's applies and written at the end of the event-loop turn, so the answers to the
    // writes that just committed (written when the apply's promises settle) leave first: two
    // loopback socket writes are tens of microseconds on a lone client's path. A/B at 1 client, 5
    // rounds: p50 median 0.960 -> 0.936 ms. Queued behind the rest, they keep their order.
    const { urgent, commitNotices } = splitCommitNotices(ready.messagesNow);
    this.sendMessages(urgent);
    // Committed entries already durable here need not wait for this Ready's write: apply them while
    // it is in flight (the CPU of the apply overlaps the fsync, and a write's answer does not wait
    // for the fsync of the commit index that made it committed). Durable means below the first
    // entry this Ready writes: every earlier entry was written by an earlier Ready, and a committed
    // entry is never truncated. With a snapshot to install, everything waits as before. Applying
    // ahead of the stored commit index is fine: on restart the engine may be ahead of the log's
    // commit (bootstrap.ts), and entries it already holds are skipped.
    const split = ready.snapshot === null ? durablePrefixLength(ready.committedEntries, ready.entries) : 0;
    // A Ready that only moves the commit index writes nothing. Raft does not need the commit index
    // durable: a restarted node learns it again from the leader, and bootstrap copes with an engine
    // ahead of the stored commit (etcd writes it without an fsync; MustSync). It rides along with
    // the next write that happens anyway, so the stored commit index trails by one write at most.
    // Not writing it spares every member a thread-pool write per commit, which at one client sat
    // between the leader's commit and its answer and between a follower's appends.
    const commitOnly = this.isCommitOnly(ready);
    if (commitOnly) this.unsavedHardState = ready.hardState;
    const mustPersist = !commitOnly && (ready.hardState !== null || ready.entries.length > 0 || ready.snapshot !== null);
    if (mustPersist && split > 0) {
      const persisting = this.persist(ready);
      try {
        this.applyCommitted(split === ready.committedEntries.length ? ready.committedEntries : ready.committedEntries.slice(0, split));
      } catch (error) {
        await persisting.catch(() => {}); // the apply's error is the one to report
        throw error;
      }
      await persisting;
    } else if (mustPersist) {
      await this.persist(ready);
    }
    this.sendMessages(ready.messagesAfterPersist);
    if (ready.snapshot !== null) this.appliedMembershipIs(ready.snapshot.membership, ready.snapshot.index, 'a snapshot from the leader');
    const rest = mustPersist ? ready.committedEntries.slice(split) : ready.committedEntries;
    this.applyCommitted(rest);
    this.sendMessages(commitNotices, { writeNow: false });
    for (const readState of ready.readStates) {
      const read = this.reads.get(readState.context);
      if (read) read.index = readState.index;
    }
    this.releaseReads();
    this.node.advance();
    await this.maybeCompact();
    this.upkeep.afterReady();
  }

  /** Whether this Ready's only change to persist is the commit index (see handleReady). */
  private isCommitOnly(ready: Ready): boolean {
    const hardState = ready.hardState;
    return hardState !== null && ready.entries.length === 0 && ready.snapshot === null
      && hardState.term === this.syncedTermVote.term && hardState.votedFor === this.syncedTermVote.votedFor;
  }

  /** One write and one fsync for everything in this Ready; a full disk pauses the loop. Term and
   * vote changes, entries and snapshots are synced before anything that promises them is sent. */
  private async persist(ready: Ready): Promise<void> {
    // A commit index not written yet goes with this write, unless the Ready has a newer hard state.
    const hardState = ready.hardState ?? this.unsavedHardState;
    const batch = { hardState, entries: ready.entries, snapshot: ready.snapshot };
    for (;;) {
      try {
        await this.wal.save(batch);
        if (hardState !== null) {
          this.syncedTermVote = { term: hardState.term, votedFor: hardState.votedFor };
          // Readies come in order: what was just written is at least as new as the one held back.
          this.unsavedHardState = null;
        }
        if (this.diskFull) {
          this.diskFull = false;
          this.logger.warn('disk space is back: writes resume');
        }
        return;
      } catch (error) {
        if (!(error instanceof DiskFullError)) throw error;
        if (!this.diskFull) this.logger.error('ALARM: disk full, refusing writes until space returns', { dataDir: this.config.dataDir });
        this.diskFull = true;
        await new Promise((resolve) => setTimeout(resolve, DISK_FULL_RETRY_MS));
        if (this.stopped) throw error;
      }
    }
  }

  private sendMessages(messages: readonly Message[], options: { readonly writeNow?: boolean } = {}): void {
    if (messages.length === 0) return;
    const regular: Message[] = [];
    for (const message of messages) {
      if (message.type === 'snapshotRequest') this.sendSnapshot(message);
      else regular.push(message);
    }
    if (regular.length > 0) this.transport.send(regular, options);
  }

  /** Snapshots travel on a connection of their own, streamed from the engine's read view. */
  private sendSnapshot(request: SnapshotRequest): void {
    if (this.snapshotsSending.has(request.to)) return;
    this.snapshotsSending.add(request.to);
    const exported = this.kv.exportSnapshot();
    this.logger.info('sending snapshot', { to: request.to, index: request.snapshot.index, dataAppliedIndex: exported.appliedIndex });
    void this.transport.sendSnapshot(request.to, request, exported.chunks).then((ok) => {
      this.snapshotsSending.delete(request.to);
      if (!ok) this.logger.warn('snapshot transfer failed; will retry', { to: request.to });
      this.guard(() => this.node.reportSnapshotResult(request.to, ok));
      this.scheduleReady();
    });
  }

  private applyCommitted(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const results = this.kv.apply(entries);
    for (const entry of entries) {
      if (entry.kind === 'config') {
        this.resolveConfigChange(entry.index, entry.term);
        this.appliedMembershipIs(entry.membership, entry.index, 'a committed configuration entry');
        continue;
      }
      const proposal = this.proposals.get(entry.index);
      if (proposal === undefined) continue;
      this.proposals.delete(entry.index);
      clearTimeout(proposal.timer);
      const result = results.get(entry.index);
      if (proposal.term === entry.term && result !== undefined) proposal.resolve(result);
      else proposal.reject(new ApiError('OUTCOME_UNKNOWN', 'Leadership changed while the write was in flight; retry with the same client id and sequence number.'));
    }
  }

  private resolveConfigChange(index: Index, term: number): void {
    const change = this.configChanges.get(index);
    if (change === undefined) return;
    this.configChanges.delete(index);
    clearTimeout(change.timer);
    if (change.term === term) change.resolve(index);
    else change.reject(new ApiError('OUTCOME_UNKNOWN', 'Leadership changed while the membership change was in flight; check GET /cluster/members.'));
  }

  /** The committed membership moved on to `membership`: a node that was in it and is not any more
   * was removed (a joining node is in none until its own entry arrives). */
  private appliedMembershipIs(membership: Membership, index: Index, how: string): void {
    const includesSelf = findMember(membership, this.config.nodeId) !== undefined;
    if (this.appliedIncludesSelf && !includesSelf) this.markRemoved({ index, how });
    this.appliedIncludesSelf = includesSelf;
  }

  /** Reads whose ReadIndex question or answer may have been lost (read-retry.ts). */
  private askReadsAgain(): void {
    if (this.reads.size === 0) return;
    for (const context of readsToAskAgain(this.reads, performance.now())) {
      const accepted = this.node.readIndex(context);
      if (!accepted.ok) this.logger.debug('could not ask for a read index again', { context, reason: accepted.reason });
    }
  }

  private reissuePendingReads(): void {
    for (const [context, read] of this.reads) {
      if (read.index >= 0) continue;
      read.askedAtMs = performance.now();
      const accepted = this.node.readIndex(context);
      if (!accepted.ok) this.logger.debug('could not re-ask a read index of the new leader', { context, reason: accepted.reason });
    }
  }

  private releaseReads(): void {
    const applied = this.node.appliedIndex;
    for (const [context, read] of this.reads) {
      if (read.index >= 0 && read.index <= Math.max(applied, this.kv.appliedIndex)) {
        clearTimeout(read.timer);
        this.reads.delete(context);
        read.resolve();
      }
    }
  }

  /**
   * Every `snapshotEveryEntries` applied entries, or once the log grew by `snapshotEveryBytes`
   * (snapshot-policy.ts): make the engine durable, then drop the log before the snapshot point
   * (keeping a tail for slow followers). The flush runs in the background: awaiting it here held
   * the Ready loop (no WAL writes, no messages) for 10-40 ms every 10,000 entries (traced under a
   * 64-client write load), on every node at about the same moment since they reach the same index
   * together.
   * Only the durable point's bookkeeping (core compact, one WAL record) runs inside the loop.
   */
  private async maybeCompact(): Promise<void> {
    const durable = this.engineDurableIndex;
    if (durable !== null) {
      this.engineDurableIndex = null;
      await this.compactLogTo(durable.index, durable.reason);
      return;
    }
    if (this.engineSync !== null) return;
    const applied = this.node.appliedIndex;
    const reason = this.snapshotPolicy.due(applied, this.node.latestSnapshot.index, this.wal.stats().bytes);
    if (reason === null) return;
    // Everything applied so far is in the engine's open batch or earlier; sync() commits it and
    // flushes, so once it resolves the engine holds `applied` durably.
    this.engineSync = this.kv.sync().then(
      () => {
        this.engineSync = null;
        if (this.stopped) return;
        this.engineDurableIndex = { index: applied, reason };
        this.scheduleReady();
      },
      (error: unknown) => {
        this.engineSync = null;
        this.fail(error as Error);
      },
    );
  }

  private async compactLogTo(applied: Index, reason: string): Promise<void> {
    this.node.compact(applied, this.config.snapshotKeepTailEntries);
    const meta = this.node.latestSnapshot;
    if (meta.index !== applied) return; // a snapshot from the leader got ahead of this point
    await this.wal.compact(meta, Math.max(0, meta.index - this.config.snapshotKeepTailEntries));
    const walBytes = this.wal.stats().bytes;
    this.snapshotPolicy.recorded(walBytes);
    this.logger.info('snapshot point recorded, log compacted', { index: meta.index, term: meta.term, keptFrom: this.node.firstIndex, reason, walBytes });
  }

  /** Wait for a background engine flush (before the engine is closed or replaced). */
  private async settleEngineSync(): Promise<void> {
    while (this.engineSync !== null) await this.engineSync;
  }

  private observe(ready: Ready): void {
    for (const event of ready.events) this.logEvent(event);
    const { role, leaderId } = ready.softState;
    if (role !== this.lastRole || leaderId !== this.lastLeader) {
      const leaderChanged = leaderId !== this.lastLeader;
      this.lastRole = role;
      this.lastLeader = leaderId;
      if (leaderId !== 0) for (const waiter of [...this.waitingForLeader]) waiter();
      // A read index asked of a leader that stepped down (a leadership transfer, say) is never
      // answered: ask the new leader, so the read waits a round trip instead of timing out.
      if (leaderChanged && leaderId !== 0) this.reissuePendingReads();
    }
  }

  private logEvent(event: RaftEvent): void {
    const fields = { term: this.node.term, state: this.node.role, ...event };
    switch (event.type) {
      case 'becameLeader': this.logger.info('became leader', fields); break;
      case 'steppedDown': this.logger.info('stepped down', fields); break;
      case 'becameFollower': this.logger.info('following leader', fields); break;
      case 'electionStarted': this.logger.debug('election started', fields); break;
      case 'membershipChanged': this.logger.info('membership changed', { index: event.index, members: event.membership.members.map((m) => `${m.id}:${m.role}`).join(',') }); break;
      case 'snapshotInstalled': this.logger.info('snapshot adopted by the core', fields); break;
      default: this.logger.debug(event.type, fields);
    }
  }

  /** Run core code; a broken invariant means the node must stop. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.fail(error as Error);
    }
  }

  private fail(error: Error): void {
    if (this.stopped) return;
    this.logger.error('fatal error: the node stops', { error, stack: error.stack });
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.upkeep.stop();
    this.onFatal(error);
  }
}

/** How many of `committed` (a prefix) lie below the first entry `written` adds: those are on disk
 * already, from earlier Readies. */
export function durablePrefixLength(committed: readonly Entry[], written: readonly Entry[]): number {
  if (written.length === 0) return committed.length;
  const firstWritten = written[0].index;
  let count = 0;
  while (count < committed.length && committed[count].index < firstWritten) count++;
  return count;
}

/** Appends without entries (notices of the leader's commit index, or probes) apart from the rest;
 * one pass, and no copy when there are none. */
function splitCommitNotices(messages: readonly Message[]): { readonly urgent: readonly Message[]; readonly commitNotices: readonly Message[] } {
  const isNotice = (m: Message): boolean => m.type === 'appendRequest' && m.entries.length === 0;
  if (!messages.some(isNotice)) return { urgent: messages, commitNotices: [] };
  const urgent: Message[] = [];
  const commitNotices: Message[] = [];
  for (const message of messages) (isNotice(message) ? commitNotices : urgent).push(message);
  return { urgent, commitNotices };
}
