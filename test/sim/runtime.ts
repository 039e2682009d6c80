// Drives one RaftNode exactly as the core's contract says, on simulated time: a tick every 10 ms
// (with a random phase per node), and a Ready loop with an asynchronous simulated fsync:
//   1. send messagesNow at once;
//   2. write snapshot, entries, hard state to the disk's unsynced buffer and start a sync;
//   3. when the sync completes: send messagesAfterPersist, apply the snapshot and the committed
//      entries to the KV state machine, serve the ReadIndex reads the applied state now covers, call
//      advance(), and look for the next Ready.
// While a sync is in flight the node keeps taking ticks, messages and proposals, which is how many
// proposals come to share one write. The runtime reports everything the checkers need.
//
// Snapshots arrive streamed in chunks (see `Cluster`): the chunks of a transfer are staged apart
// and only a complete, intact image is handed to the core with its snapshot request; a transfer cut
// off midway leaves a partial staging area that is never used (a newer transfer or a restart drops it).

import type { RaftNode, ReadIndexResult, TransferResult } from '../../src/raft/node.js';
import { voterIds } from '../../src/raft/membership.js';
import type {
  Entry, Index, MembershipChange, Message, NodeId, ProposeResult, RaftConfig, RaftEvent, RaftInitialState, Ready, Role, Term,
} from '../../src/raft/types.js';
import type { SafetyChecker } from './checkers.js';
import type { SimDisk } from './disk.js';
import { ms, type Micros, type Simulation } from './events.js';
import { describeEntry, type Trace } from './trace.js';
import {
  commandText, decodeCommand, encodeCommand, imageDigest, KvStateMachine, type KvCommand, type KvImage, type KvOutput,
} from './kv.js';
import type { Rng } from './rng.js';

export type NodeFactory = (config: RaftConfig, initial: RaftInitialState) => RaftNode;

/** What travels on the simulated network: a message, plus the image beside a snapshot request. */
export interface Envelope {
  readonly message: Message;
  /** Beside a snapshot request: the sender's whole image (the receiver assembles its own copy from
   * the chunks it staged, and checks it against `imageDigest`). */
  readonly image: KvImage | null;
  readonly imageDigest: string | null;
  readonly senderIncarnation: number;
  /** Set once the sender was told how a snapshot transfer ended (copies are not reported twice). */
  snapshotReported: boolean;
}

export type ProposalOutcome =
  | { readonly status: 'ok'; readonly output: KvOutput }
  | { readonly status: 'unknown'; readonly reason: string };

interface PendingProposal {
  readonly index: Index;
  readonly term: Term;
  readonly opId: number;
  readonly resolve: (outcome: ProposalOutcome) => void;
}

/** A ReadIndex read (thesis 6.4): served once a ReadState arrived and the node applied up to it. */
interface PendingRead {
  readonly context: number;
  readonly key: string;
  index: Index | null;
  /** Asked on a follower, which got the read index from the leader. */
  readonly onFollower: boolean;
  readonly resolve: (outcome: ProposalOutcome) => void;
}

export interface RuntimeOptions {
  readonly tickMicros: Micros;
  readonly fsyncMicrosMin: Micros;
  readonly fsyncMicrosMax: Micros;
  /** Probability that one fsync is slow (a stalled disk), and how slow it may get. */
  readonly fsyncSlowProbability: number;
  readonly fsyncSlowMicrosMax: Micros;
  /** Take a snapshot and compact the log every this many applied entries; 0 = never. */
  readonly snapshotIntervalEntries: number;
  readonly snapshotKeepTailEntries: number;
  /** Builds the core's configuration for one incarnation of a node. */
  readonly configFor: (id: NodeId, random: Rng) => RaftConfig;
  readonly nodeFactory: NodeFactory;
  /** Test only: hand the core a snapshot whose transfer broke off, with the half-received image
   * (a deliberately broken runtime, to show the checkers catch it). */
  readonly installPartialSnapshots?: boolean;
}

/** Things the cluster and the fault schedule want to know about, beyond the checkers. */
export interface RuntimeListener {
  coreEvent?(id: NodeId, event: RaftEvent): void;
  /** A leader learned that an entry of its own term is committed (the end of a failover). */
  leaderCommitted?(id: NodeId, term: Term): void;
  roleChanged?(id: NodeId, role: Role, term: Term): void;
  /** Node `id` is sending a granted (real) vote for `candidate` in `term`. */
  voteGranted?(id: NodeId, term: Term, candidate: NodeId): void;
}

export interface RuntimeStats {
  readies: number;
  fsyncs: number;
  applied: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  /** Snapshot transfers to this node that broke off midway (their staging was never used). */
  snapshotsBrokenOff: number;
  /** ReadIndex rounds this node started as leader (heartbeat rounds with a new context). */
  readRounds: number;
  /** ReadIndex reads this node answered ok (its own clients', on a leader or a follower). */
  readsServed: number;
  /** Of those, the ones asked while this node was a follower. */
  readsServedOnFollower: number;
}

/** The chunks of one snapshot transfer received so far. */
interface StagedSnapshot {
  readonly chunkCount: number;
  readonly pairs: (readonly [string, string])[];
  chunksReceived: number;
}

export interface RuntimeContext {
  readonly sim: Simulation;
  readonly trace: Trace;
  readonly checker: SafetyChecker;
  readonly listener: RuntimeListener;
  send(envelope: Envelope): void;
}

export class NodeRuntime {
  private nodeValue: RaftNode | null = null;
  private incarnationValue = 0;
  private machine: KvStateMachine;
  private appliedIndex: Index = 0;
  private handling: Ready | null = null;
  private readonly pending = new Map<Index, PendingProposal>();
  private readonly pendingReads = new Map<number, PendingRead>();
  /** Images that arrived beside snapshot requests, by "index/term", until the core installs one. */
  private readonly receivedImages = new Map<string, KvImage>();
  /** Images of the snapshots this node held lately (taken, installed or recovered), by "index/term". */
  private readonly ownImages = new Map<string, KvImage>();
  /** Snapshot transfers being received, by stream id (bounded; a restart loses them). */
  private readonly staged = new Map<number, StagedSnapshot>();
  /** The highest read-round context this incarnation sent (contexts start at 1 per incarnation). */
  private readRoundContextMax = 0;
  /** A snapshot was asked for while a Ready was in flight: take it when that one is done. */
  private snapshotRequested: { readonly keepTailEntries: number } | null = null;
  private lastRole: Role = 'follower';
  private lastTerm: Term = 0;
  private lastCommit: Index = 0;
  private leaderCommittedTerm: Term = 0;
  /** A stalled event loop (a long GC pause): no ticks, and input waits in the socket buffers. */
  private pausedUntil: Micros = 0;
  private readonly held: Envelope[] = [];
  readonly stats: RuntimeStats = {
    readies: 0, fsyncs: 0, applied: 0, snapshotsTaken: 0, snapshotsInstalled: 0, snapshotsBrokenOff: 0, readRounds: 0, readsServed: 0,
    readsServedOnFollower: 0,
  };

  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
    private readonly context: RuntimeContext,
    private readonly options: RuntimeOptions,
    /** Draws fsync latencies, tick phases and crash outcomes. */
    private readonly rng: Rng,
    /** The core's randomness; one stream per node, continued across restarts. */
    private readonly coreRandom: Rng,
  ) {
    this.machine = new KvStateMachine(disk.durable.image);
  }

  get node(): RaftNode | null {
    return this.nodeValue;
  }

  get isUp(): boolean {
    return this.nodeValue !== null;
  }

  get incarnation(): number {
    return this.incarnationValue;
  }

  /** The KV state machine (for tests and the end-of-run checks). */
  get stateMachine(): KvStateMachine {
    return this.machine;
  }

  // ---- Life cycle -----------------------------------------------------------------------------

  /** Starts (or restarts) the node from what its disk durably holds. */
  start(): void {
    if (this.nodeValue !== null) throw new Error(`n${this.id} is already running`);
    this.incarnationValue++;
    const durable = this.disk.durable;
    const initial = durable.initialState();
    this.machine = new KvStateMachine(durable.image);
    this.appliedIndex = durable.snapshot.index;
    this.receivedImages.clear();
    this.ownImages.clear();
    this.staged.clear();
    this.readRoundContextMax = 0;
    this.snapshotRequested = null;
    this.rememberImage(durable.image);
    this.handling = null;
    this.pausedUntil = 0;
    this.held.length = 0;
    const config = this.options.configFor(this.id, this.coreRandom);
    this.nodeValue = this.options.nodeFactory(config, initial);
    const node = this.nodeValue;
    this.lastRole = node.role;
    this.lastTerm = node.term;
    this.lastCommit = node.commitIndex;
    this.leaderCommittedTerm = 0;
    this.context.checker.observeStart(this.id, { term: node.term, commitIndex: node.commitIndex, appliedIndex: node.appliedIndex });
    if (durable.snapshot.index > 0) this.context.checker.observeImage(this.id, 'recovered', durable.image.index, imageDigest(durable.image));
    if (this.context.trace.enabled) {
      this.context.trace.add(
        `n${this.id} start #${this.incarnationValue} term=${initial.hardState.term} vote=${initial.hardState.votedFor} ` +
          `commit=${initial.hardState.commitIndex} snapshot=${initial.snapshot.index}/${initial.snapshot.term} ` +
          `log=${initial.entries.length === 0 ? '[]' : `[${initial.entries[0]?.index}..${initial.entries[initial.entries.length - 1]?.index}]`}`,
      );
    }
    this.scheduleTick(this.rng.intBetween(0, this.options.tickMicros - 1));
    this.afterInput();
  }

  /** Power loss: the node object and everything not synced are gone; clients learn nothing more. */
  crash(): void {
    if (this.nodeValue === null) return;
    this.nodeValue = null;
    this.incarnationValue++;
    this.handling = null;
    this.pausedUntil = 0;
    this.held.length = 0;
    this.staged.clear();
    this.snapshotRequested = null;
    this.disk.crash(this.rng);
    this.context.trace.add(`n${this.id} CRASH (durable: term=${this.disk.durable.hardState.term} last=${this.disk.durable.lastIndex})`);
    this.failPending('node crashed');
    this.failReads('node crashed');
  }

  private scheduleTick(delay: Micros): void {
    const incarnation = this.incarnationValue;
    this.context.sim.after(delay, () => {
      if (incarnation !== this.incarnationValue || this.nodeValue === null) return;
      // Ticks missed while stalled are not replayed in a burst (ARCHITECTURE.md, "Time").
      if (!this.isPaused) {
        this.nodeValue.tick();
        this.afterInput();
      }
      this.scheduleTick(this.options.tickMicros);
    });
  }

  get isPaused(): boolean {
    return this.context.sim.now < this.pausedUntil;
  }

  /** When the node will next take input (now, unless its event loop is stalled). */
  get availableAt(): Micros {
    return Math.max(this.context.sim.now, this.pausedUntil);
  }

  /** Stalls the node's event loop for `duration`: then it handles what arrived meanwhile, in order. */
  pause(duration: Micros): void {
    if (this.nodeValue === null) return;
    const incarnation = this.incarnationValue;
    this.pausedUntil = Math.max(this.pausedUntil, this.context.sim.now + duration);
    this.context.sim.at(this.pausedUntil, () => {
      if (incarnation !== this.incarnationValue || this.isPaused) return;
      this.context.trace.add(`n${this.id} resumes after a stall, ${this.held.length} messages waiting`);
      // The woken event loop drains its sockets in no particular order, client requests among them.
      const waiting = this.held.splice(0, this.held.length);
      for (const envelope of waiting) {
        this.context.sim.after(this.rng.intBetween(0, ms(3)), () => {
          if (incarnation === this.incarnationValue) this.receive(envelope);
        });
      }
    });
  }

  // ---- Inputs ---------------------------------------------------------------------------------

  /** A message arrived from the network; dropped when the node is down. */
  receive(envelope: Envelope): boolean {
    const node = this.nodeValue;
    if (node === null) return false;
    if (this.isPaused) {
      this.held.push(envelope);
      return true;
    }
    const message = envelope.message;
    if (message.type === 'snapshotRequest' && envelope.image !== null) {
      this.receivedImages.set(`${message.snapshot.index}/${message.snapshot.term}`, envelope.image);
      // The core installs at most the newest ones; keep a few (a bounded buffer, like a real node).
      if (this.receivedImages.size > 4) {
        const oldest = this.receivedImages.keys().next().value;
        if (oldest !== undefined) this.receivedImages.delete(oldest);
      }
    }
    node.step(message);
    this.afterInput();
    return true;
  }

  /** A client's command; null when the node is down (the connection was refused). */
  propose(command: KvCommand, resolve: (outcome: ProposalOutcome) => void): ProposeResult | null {
    const node = this.nodeValue;
    if (node === null) return null;
    const result = node.propose(encodeCommand(command));
    if (result.ok) {
      this.pending.get(result.index)?.resolve({ status: 'unknown', reason: 'index proposed again' });
      this.pending.set(result.index, { index: result.index, term: result.term, opId: command.opId, resolve });
      this.context.trace.add(`n${this.id} propose op ${command.opId} -> ${result.index}/${result.term}`);
    }
    this.afterInput();
    return result;
  }

  /**
   * A client's linearizable read through ReadIndex; null when the node is down. The context is the
   * operation id, unique in the run. On a follower the core asks the leader for the read index.
   */
  read(context: number, key: string, resolve: (outcome: ProposalOutcome) => void): ReadIndexResult | null {
    const node = this.nodeValue;
    if (node === null) return null;
    const result = node.readIndex(context);
    if (result.ok) {
      this.pendingReads.set(context, { context, key, index: null, onFollower: node.role !== 'leader', resolve });
      this.context.trace.add(`n${this.id} readIndex ctx=${context} key ${key}`);
    }
    this.afterInput();
    return result;
  }

  /** Asks the leader to hand leadership to `to` (thesis 3.10). */
  transferLeadership(to: NodeId | null): TransferResult | null {
    const node = this.nodeValue;
    if (node === null) return null;
    const result = node.transferLeadership(to);
    this.afterInput();
    return result;
  }

  /** An operator's membership change, proposed to this node (thesis 4.1); null when it is down. */
  proposeMembershipChange(change: MembershipChange): ProposeResult | null {
    const node = this.nodeValue;
    if (node === null) return null;
    const result = node.proposeMembershipChange(change);
    if (this.context.trace.enabled) {
      this.context.trace.add(`n${this.id} propose membership change ${JSON.stringify(change)}: ${JSON.stringify(result)}`);
    }
    this.afterInput();
    return result;
  }

  /** Take a snapshot of the state machine now and compact the log, keeping `keepTailEntries`. */
  compactNow(keepTailEntries: number): void {
    const node = this.nodeValue;
    if (node === null || this.isPaused) return; // a stalled event loop takes no snapshot
    if (this.handling !== null) {
      this.snapshotRequested = { keepTailEntries };
      return;
    }
    this.takeSnapshot(node, keepTailEntries);
  }

  // ---- Snapshot transfers, chunk by chunk --------------------------------------------------------

  /** A chunk of snapshot transfer `streamId` arrived; chunks of one stream arrive in order. */
  stageSnapshotChunk(streamId: number, chunk: number, chunkCount: number, pairs: readonly (readonly [string, string])[]): void {
    if (this.nodeValue === null) return;
    let staged = this.staged.get(streamId);
    if (staged === undefined) {
      if (chunk !== 0) return; // the start was lost with an earlier incarnation: useless
      staged = { chunkCount, pairs: [], chunksReceived: 0 };
      this.staged.set(streamId, staged);
      // A bounded staging area: abandoned transfers make room for new ones.
      if (this.staged.size > 4) {
        const oldest = this.staged.keys().next().value;
        if (oldest !== undefined) this.staged.delete(oldest);
      }
    }
    if (chunk !== staged.chunksReceived) return;
    staged.pairs.push(...pairs);
    staged.chunksReceived++;
  }

  /** The transfer broke off (a reset the receiver noticed): its staging is dropped, never used. */
  abortSnapshotStream(streamId: number, envelope: Envelope): void {
    const staged = this.staged.get(streamId);
    this.staged.delete(streamId);
    if (this.nodeValue === null) return;
    this.stats.snapshotsBrokenOff++;
    if (this.context.trace.enabled) {
      this.context.trace.add(`n${this.id} snapshot transfer #${streamId} broke off after ${staged?.chunksReceived ?? 0} chunks: staging dropped`);
    }
    if (this.options.installPartialSnapshots === true && staged !== undefined && envelope.image !== null) {
      // The deliberately broken runtime: it takes what it has for the whole snapshot.
      const image = Object.freeze({ ...envelope.image, pairs: Object.freeze(staged.pairs.slice()) });
      this.receive({ ...envelope, image });
    }
  }

  /**
   * The last chunk arrived: assemble the image, check it against the sender's digest, and only then
   * hand the snapshot request to the core. Returns whether the snapshot was delivered whole.
   */
  completeSnapshotStream(streamId: number, envelope: Envelope): boolean {
    const staged = this.staged.get(streamId);
    this.staged.delete(streamId);
    const sent = envelope.image;
    if (this.nodeValue === null || staged === undefined || sent === null || staged.chunksReceived !== staged.chunkCount) return false;
    const image: KvImage = Object.freeze({ index: sent.index, term: sent.term, membership: sent.membership, pairs: Object.freeze(staged.pairs) });
    if (imageDigest(image) !== envelope.imageDigest) {
      this.stats.snapshotsBrokenOff++;
      return false;
    }
    return this.receive({ ...envelope, image });
  }

  /** The sender learns how a snapshot transfer it started ended. */
  reportSnapshot(to: NodeId, ok: boolean, senderIncarnation: number): void {
    if (this.nodeValue === null || senderIncarnation !== this.incarnationValue) return;
    this.nodeValue.reportSnapshotResult(to, ok);
    this.afterInput();
  }

  /** After every input: check what changed, then drain Readies. */
  private afterInput(): void {
    this.observe();
    this.pump();
  }

  // ---- The Ready loop -------------------------------------------------------------------------

  private pump(): void {
    for (;;) {
      const node = this.nodeValue;
      if (node === null || this.handling !== null || !node.hasReady()) return;
      this.handle(node, node.ready());
    }
  }

  private handle(node: RaftNode, ready: Ready): void {
    this.handling = ready;
    this.stats.readies++;
    for (const event of ready.events) this.onCoreEvent(event);
    for (const message of ready.messagesNow) {
      this.checkPromise(message);
      this.send(message);
    }
    const persist = ready.snapshot !== null || ready.entries.length > 0 || ready.hardState !== null;
    if (!persist) {
      this.finish(node, ready);
      return;
    }
    this.persist(ready);
    const token = this.disk.startSync();
    this.stats.fsyncs++;
    const incarnation = this.incarnationValue;
    const complete = (): void => {
      if (incarnation !== this.incarnationValue) return;
      if (this.isPaused) {
        this.context.sim.at(this.pausedUntil, complete);
        return;
      }
      this.disk.completeSync(token);
      this.finish(node, ready);
      this.afterInput();
    };
    this.context.sim.after(this.fsyncLatency(), complete);
  }

  private fsyncLatency(): Micros {
    const { fsyncMicrosMin, fsyncMicrosMax, fsyncSlowProbability, fsyncSlowMicrosMax } = this.options;
    let latency = this.rng.intBetween(fsyncMicrosMin, fsyncMicrosMax);
    if (this.rng.chance(fsyncSlowProbability)) latency += this.rng.intBetween(0, fsyncSlowMicrosMax);
    return latency;
  }

  private persist(ready: Ready): void {
    const disk = this.disk;
    const checker = this.context.checker;
    if (ready.snapshot !== null) {
      const meta = ready.snapshot;
      const image = this.receivedImages.get(`${meta.index}/${meta.term}`);
      if (image === undefined) {
        checker.report('readyContract', `n${this.id} was told to persist snapshot ${meta.index}/${meta.term} it never received`);
      } else {
        disk.write({ kind: 'snapshot', meta, image });
      }
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0] as Entry;
      checker.observePersist(this.id, ready.entries, disk.current.termAt(first.index - 1));
      disk.write({ kind: 'entries', entries: ready.entries });
      if (this.context.trace.enabled) {
        const last = ready.entries[ready.entries.length - 1] as Entry;
        this.context.trace.add(`n${this.id} write entries ${first.index}/${first.term}..${last.index}/${last.term}`);
      }
    }
    if (ready.hardState !== null) disk.write({ kind: 'hardState', hardState: ready.hardState });
  }

  private finish(node: RaftNode, ready: Ready): void {
    this.countReadRounds(ready);
    for (const message of ready.messagesAfterPersist) {
      this.checkPromise(message);
      this.send(message);
    }
    if (ready.snapshot !== null) this.installSnapshot(ready);
    for (const entry of ready.committedEntries) this.apply(entry);
    for (const readState of ready.readStates) {
      const read = this.pendingReads.get(readState.context);
      if (read !== undefined && read.index === null) read.index = readState.index;
    }
    this.serveReads();
    node.advance();
    this.handling = null;
    // advance() may have moved the leader's commit index: the checkers see it before anyone can.
    this.observe();
    if (this.snapshotRequested !== null) {
      const { keepTailEntries } = this.snapshotRequested;
      this.snapshotRequested = null;
      this.takeSnapshot(node, keepTailEntries);
    } else {
      this.maybeTakeSnapshot(node);
    }
  }

  /** A read round is a heartbeat broadcast carrying a context this node never sent before. */
  private countReadRounds(ready: Ready): void {
    for (const message of ready.messagesNow) {
      if (message.type === 'heartbeatRequest' && message.context > this.readRoundContextMax) {
        this.stats.readRounds += message.context - this.readRoundContextMax;
        this.readRoundContextMax = message.context;
      }
    }
  }

  private installSnapshot(ready: Ready): void {
    const meta = ready.snapshot;
    if (meta === null) return;
    const image = this.receivedImages.get(`${meta.index}/${meta.term}`);
    if (image === undefined) return;
    // Newer images may have arrived meanwhile: the core may install one of them next.
    for (const [key, received] of [...this.receivedImages]) {
      if (received.index <= meta.index) this.receivedImages.delete(key);
    }
    if (meta.index <= this.appliedIndex) {
      this.context.checker.report('readyContract', `n${this.id} was told to install snapshot ${meta.index} but has applied ${this.appliedIndex}`);
      return;
    }
    this.machine = new KvStateMachine(image);
    this.appliedIndex = meta.index;
    this.rememberImage(image);
    this.stats.snapshotsInstalled++;
    this.context.checker.observeImage(this.id, 'installed', meta.index, imageDigest(image));
    this.context.checker.observeSnapshotMembership(this.id, 'installed a snapshot', meta.index, meta.membership);
    this.context.trace.add(`n${this.id} install snapshot ${meta.index}/${meta.term}`);
    for (const proposal of [...this.pending.values()]) {
      if (proposal.index <= meta.index) this.resolve(proposal, { status: 'unknown', reason: 'replaced by a snapshot' });
    }
  }

  private apply(entry: Entry): void {
    if (entry.index !== this.appliedIndex + 1) {
      this.context.checker.report(
        'applyOrder',
        `n${this.id} was handed entry ${entry.index}/${entry.term} to apply after applying ${this.appliedIndex}`,
      );
      if (entry.index <= this.appliedIndex) return;
    }
    const output = this.machine.apply(entry);
    this.appliedIndex = entry.index;
    this.stats.applied++;
    this.context.checker.observeApply(this.id, entry);
    if (this.context.trace.enabled) this.context.trace.add(`n${this.id} apply ${describeEntry(entry, commandText)}`);
    const proposal = this.pending.get(entry.index);
    if (proposal === undefined) return;
    const same = entry.kind === 'command' && entry.term === proposal.term && output !== null &&
      this.opIdOf(entry) === proposal.opId;
    if (same && output !== null) this.resolve(proposal, { status: 'ok', output });
    else this.resolve(proposal, { status: 'unknown', reason: `index ${entry.index} holds another entry` });
  }

  private opIdOf(entry: Entry): number | undefined {
    return entry.kind === 'command' ? decodeCommand(entry.data)?.opId : undefined;
  }

  private maybeTakeSnapshot(node: RaftNode): void {
    const interval = this.options.snapshotIntervalEntries;
    if (interval <= 0 || this.appliedIndex - this.disk.durable.snapshot.index < interval) return;
    this.takeSnapshot(node, this.options.snapshotKeepTailEntries);
  }

  private takeSnapshot(node: RaftNode, keep: number): void {
    if (this.appliedIndex <= this.disk.durable.snapshot.index) return;
    const image = this.machine.image();
    this.disk.saveLocalSnapshot({ index: image.index, term: image.term, membership: image.membership }, image);
    this.rememberImage(image);
    node.compact(image.index, keep);
    this.disk.compactBefore(image.index - keep);
    this.stats.snapshotsTaken++;
    const checker = this.context.checker;
    checker.observeImage(this.id, 'took', image.index, imageDigest(image));
    checker.observeSnapshotMembership(this.id, 'took a snapshot', image.index, image.membership);
    checker.observeSnapshotMembership(this.id, 'recorded a snapshot in its core', node.latestSnapshot.index, node.latestSnapshot.membership);
    this.context.trace.add(`n${this.id} snapshot at ${image.index}/${image.term}, compact before ${image.index - keep}`);
  }

  // ---- Outputs --------------------------------------------------------------------------------

  private send(message: Message): void {
    let image: KvImage | null = null;
    let digest: string | null = null;
    if (message.type === 'snapshotRequest') {
      // The request may have been queued before a newer snapshot replaced this one: like a real
      // node, keep the last few snapshot files around rather than fail such a transfer.
      const meta = message.snapshot;
      image = this.ownImages.get(`${meta.index}/${meta.term}`) ?? null;
      if (image === null) {
        const stored = this.disk.durable.snapshot;
        this.context.checker.report(
          'readyContract',
          `n${this.id} asked to send snapshot ${meta.index}/${meta.term}, which it never held (latest ${stored.index}/${stored.term})`,
        );
      } else {
        digest = imageDigest(image);
      }
    }
    this.context.send({ message, image, imageDigest: digest, senderIncarnation: this.incarnationValue, snapshotReported: false });
  }

  /** Remembers the image of a snapshot this node holds, keeping the last few. */
  private rememberImage(image: KvImage): void {
    this.ownImages.set(`${image.index}/${image.term}`, image);
    if (this.ownImages.size > 4) {
      const oldest = this.ownImages.keys().next().value;
      if (oldest !== undefined) this.ownImages.delete(oldest);
    }
  }

  /**
   * A vote or an acknowledgement promises durable state: check that the disk holds it when the
   * message leaves. A promise made in an older term than the one on disk is superseded, not broken:
   * the node can never act in that term again (several inputs can share one Ready).
   */
  private checkPromise(message: Message): void {
    const hard = this.disk.durable.hardState;
    if (message.type === 'voteResponse' && message.granted && !message.preVote) {
      this.context.checker.observeVoteGranted(this.id, message.term, message.to);
      this.context.listener.voteGranted?.(this.id, message.term, message.to);
      if (hard.term < message.term || (hard.term === message.term && hard.votedFor !== message.to)) {
        this.context.checker.report(
          'persistBeforePromise',
          `n${this.id} granted its vote to n${message.to} in term ${message.term} but its disk holds term ${hard.term} vote ${hard.votedFor}`,
        );
      }
    } else if (message.type === 'appendResponse' && message.success) {
      const durable = this.disk.durable;
      const match = message.matchIndex;
      if (hard.term < message.term) {
        this.context.checker.report(
          'persistBeforePromise',
          `n${this.id} acknowledged index ${match} in term ${message.term} but its disk holds term ${hard.term}`,
        );
      } else if (hard.term === message.term && match > durable.snapshot.index && durable.termAt(match) === undefined) {
        this.context.checker.report(
          'persistBeforePromise',
          `n${this.id} acknowledged index ${match} but its disk holds entries up to ${durable.lastIndex}`,
        );
      }
    }
  }

  /** Answers every read whose read index the state machine has reached. */
  private serveReads(): void {
    if (this.pendingReads.size === 0) return;
    for (const read of [...this.pendingReads.values()]) {
      if (read.index === null || read.index > this.appliedIndex) continue;
      this.pendingReads.delete(read.context);
      const value = this.machine.get(read.key);
      this.context.trace.add(`n${this.id} read ctx=${read.context} at ${read.index} (applied ${this.appliedIndex}): ${read.key}=${value}`);
      this.stats.readsServed++;
      if (read.onFollower) this.stats.readsServedOnFollower++;
      read.resolve({ status: 'ok', output: { op: 'get', value } });
    }
  }

  private failReads(reason: string): void {
    if (this.pendingReads.size === 0) return;
    const reads = [...this.pendingReads.values()];
    this.pendingReads.clear();
    for (const read of reads) read.resolve({ status: 'unknown', reason });
  }

  private resolve(proposal: PendingProposal, outcome: ProposalOutcome): void {
    this.pending.delete(proposal.index);
    proposal.resolve(outcome);
  }

  private failPending(reason: string): void {
    if (this.pending.size === 0) return;
    const proposals = [...this.pending.values()];
    this.pending.clear();
    for (const proposal of proposals) proposal.resolve({ status: 'unknown', reason });
  }

  // ---- Observation ----------------------------------------------------------------------------

  private onCoreEvent(event: RaftEvent): void {
    this.context.listener.coreEvent?.(this.id, event);
    if (!this.context.trace.enabled) return;
    const { type, ...rest } = event;
    this.context.trace.add(`n${this.id} event ${type} ${JSON.stringify(rest)}`);
  }

  /** The term of the entry at `index` in the node's log (memory first, then its stored snapshot). */
  termAt(index: Index): Term | undefined {
    const node = this.nodeValue;
    if (index === 0) return 0;
    if (node !== null) {
      const entry = node.entries(index, index)[0];
      if (entry !== undefined && entry.index === index) return entry.term;
    }
    return this.disk.current.termAt(index);
  }

  private observe(): void {
    const node = this.nodeValue;
    if (node === null) return;
    const checker = this.context.checker;
    const role = node.role;
    const term = node.term;
    const commit = node.commitIndex;
    checker.observeProgress(this.id, term, commit, node.appliedIndex);
    // A leader removed by the change it just committed steps down in the same step: that commit
    // was still made by counting, as leader of this term (no other node leads this term).
    const committedAsLeader = role === 'leader' || (this.lastRole === 'leader' && this.lastTerm === term);
    if (role !== this.lastRole || term !== this.lastTerm) this.onRoleChange(node, role, term);
    if (commit > this.lastCommit) {
      const commitTerm = this.termAt(commit);
      if (committedAsLeader) checker.observeLeaderCommit(this.id, term, commit, commitTerm, voterIds(node.membership));
      if (this.context.trace.enabled) this.context.trace.add(`n${this.id} commit ${this.lastCommit} -> ${commit}/${commitTerm ?? '?'}`);
      this.lastCommit = commit;
      if (role === 'leader' && commitTerm === term && this.leaderCommittedTerm !== term) {
        this.leaderCommittedTerm = term;
        this.context.trace.add(`n${this.id} leader of term ${term} committed ${commit}`);
        this.context.listener.leaderCommitted?.(this.id, term);
      }
    }
  }

  private onRoleChange(node: RaftNode, role: Role, term: Term): void {
    const wasLeader = this.lastRole === 'leader';
    this.context.trace.add(`n${this.id} ${this.lastRole}@${this.lastTerm} -> ${role}@${term} (leader n${node.leaderId})`);
    this.lastRole = role;
    this.lastTerm = term;
    if (wasLeader) this.failPending(role === 'leader' ? 'term changed' : 'lost leadership');
    // A read waiting for its read index is answered "retry" by a real node when leadership moves.
    this.failReads(`now ${role} in term ${term}`);
    if (role === 'leader') {
      this.context.checker.observeNewLeader(
        this.id, term, (index) => this.termAt(index), this.disk.current.snapshot.index, voterIds(node.membership),
      );
    }
    this.context.listener.roleChanged?.(this.id, role, term);
  }
}

/** The default fsync and tick settings: ticks of 10 ms, fsyncs of 0.1-2 ms. */
export const DEFAULT_TIMING = {
  tickMicros: ms(10),
  fsyncMicrosMin: ms(0.1),
  fsyncMicrosMax: ms(2),
  fsyncSlowProbability: 0.01,
  fsyncSlowMicrosMax: ms(20),
} as const;
