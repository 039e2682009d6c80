// A whole cluster in one process: the node runtimes, their disks, the network between them, the
// safety checker and the trace. Crash drops a node's RaftNode object and its unsynced writes;
// restart rebuilds the node from what its disk durably holds.
//
// Membership: the founding nodes are 1..N. A node that joins later gets the next unused id (ids of
// removed members are never reused), an empty disk, and starts at once: its snapshot at index 0
// records the founding membership, the configuration every log starts from, which does not name it,
// so it cannot campaign until the log (a config entry, or a snapshot from the leader) says otherwise:
// the leader's config entries are the truth. A node removed from the cluster is retired: shut down
// for good, its disk kept for the checkers.
//
// Snapshots travel as streams of chunks on a connection of their own (ARCHITECTURE.md): each chunk
// can be cut off by a partition, a crash of either side, or a connection reset; the receiver stages
// chunks and hands the core a snapshot request only when the whole image arrived intact; the sender's
// runtime reports the outcome to its core (reportSnapshotResult), sometimes wrongly "failed" when only
// the final acknowledgement was lost.

import type { Index, Membership, NodeId, ProposeResult, RaftConfig, Term } from '../../src/raft/types.js';
import { defaultRaftConfig } from '../../src/raft/types.js';
import { RaftNode, type ReadIndexResult } from '../../src/raft/node.js';
import { SafetyChecker } from './checkers.js';
import { SimDisk } from './disk.js';
import { ms, Simulation, type Micros } from './events.js';
import type { KvCommand } from './kv.js';
import { SimNetwork, type NetworkOptions } from './network.js';
import type { Rng } from './rng.js';
import {
  DEFAULT_TIMING, NodeRuntime, type Envelope, type NodeFactory, type ProposalOutcome, type RuntimeContext, type RuntimeListener,
  type RuntimeOptions,
} from './runtime.js';
import { describeMessage, Trace } from './trace.js';

/** What a joining node's empty disk says the membership at index 0 is (see the README).
 * 'founding' (default) is what src/server/bootstrap.ts does: the configuration the cluster's log
 * starts from, which every member keeps (FOUNDING) and a joining node copies. */
export type JoinBootstrap = 'fromLeader' | 'founding' | 'selfLearner' | 'empty';

export interface SnapshotStreamOptions {
  /** Probability that a transfer is reset midway (on top of partitions and crashes). */
  readonly resetProbability: number;
  /** Probability that a whole transfer's final acknowledgement is lost: the sender reports failure. */
  readonly ackLostProbability: number;
  /** A transfer is cut into 1..chunkCountMax chunks, each taking 1-10 ms. */
  readonly chunkCountMax: number;
}

export const DEFAULT_SNAPSHOT_STREAM: SnapshotStreamOptions = { resetProbability: 0, ackLostProbability: 0, chunkCountMax: 4 };

export interface ClusterOptions {
  readonly nodeCount: number;
  readonly rng: Rng;
  readonly trace: boolean;
  readonly network?: Partial<NetworkOptions>;
  readonly runtime?: Partial<RuntimeOptions>;
  readonly snapshotStream?: Partial<SnapshotStreamOptions>;
  readonly joinBootstrap?: JoinBootstrap;
}

export const defaultNodeFactory: NodeFactory = (config, initial) => new RaftNode(config, initial);

export function foundingMembership(nodeIds: readonly NodeId[]): Membership {
  return {
    members: nodeIds.map((id) => ({ id, role: 'voter' as const, peerAddr: `n${id}:7001`, httpAddr: `n${id}:8001` })),
  };
}

export interface ClusterStats {
  crashes: number;
  restarts: number;
  nodesAdded: number;
  nodesRetired: number;
  snapshotStreams: number;
  snapshotStreamsBrokenOff: number;
  snapshotAcksLost: number;
}

export class Cluster {
  readonly sim = new Simulation();
  readonly trace: Trace;
  readonly checker: SafetyChecker;
  readonly network: SimNetwork<Envelope>;
  /** The founding members' ids, 1..N. */
  readonly foundingIds: readonly NodeId[];
  /** The founding membership (every log's configuration at index 0). */
  readonly membership: Membership;
  /** Hooks for the run and the failover measurement; set fields at will. */
  readonly listener: RuntimeListener = {};
  readonly stats: ClusterStats = {
    crashes: 0, restarts: 0, nodesAdded: 0, nodesRetired: 0, snapshotStreams: 0, snapshotStreamsBrokenOff: 0, snapshotAcksLost: 0,
  };
  private readonly runtimes = new Map<NodeId, NodeRuntime>();
  private readonly retired = new Set<NodeId>();
  private activeIds: NodeId[] = [];
  private idNext: NodeId;
  private streamIdNext = 0;
  private readonly rng: Rng;
  private readonly streamRng: Rng;
  private readonly streamOptions: SnapshotStreamOptions;
  private readonly joinBootstrap: JoinBootstrap;
  private readonly runtimeOptions: RuntimeOptions;
  private readonly runtimeContext: RuntimeContext;

  constructor(options: ClusterOptions) {
    this.foundingIds = Array.from({ length: options.nodeCount }, (_, k) => k + 1);
    this.idNext = options.nodeCount + 1;
    this.membership = foundingMembership(this.foundingIds);
    this.rng = options.rng;
    this.streamRng = options.rng.fork('snapshot-streams');
    this.streamOptions = { ...DEFAULT_SNAPSHOT_STREAM, ...options.snapshotStream };
    this.joinBootstrap = options.joinBootstrap ?? 'founding';
    this.trace = new Trace(options.trace, () => this.sim.now);
    this.checker = new SafetyChecker(
      { durablyHolds: (id, index, term) => this.runtime(id).disk.durable.holds(index, term) },
      () => this.sim.now,
      20,
      this.membership,
    );
    this.network = new SimNetwork<Envelope>(this.sim, options.rng.fork('network'), this.foundingIds, options.network ?? {}, {
      deliver: (from, to, envelope) => this.deliver(from, to, envelope),
      dropped: (_from, _to, envelope, reason) => {
        if (this.trace.enabled) this.trace.add(`drop(${reason}) ${describeMessage(envelope.message)}`);
      },
    });
    this.runtimeOptions = {
      ...DEFAULT_TIMING,
      snapshotIntervalEntries: 0,
      snapshotKeepTailEntries: 0,
      configFor: (id: NodeId, random: Rng): RaftConfig => defaultRaftConfig(id, random),
      nodeFactory: defaultNodeFactory,
      ...options.runtime,
    };
    const listener: RuntimeListener = {
      coreEvent: (id, event) => this.listener.coreEvent?.(id, event),
      leaderCommitted: (id, term) => this.listener.leaderCommitted?.(id, term),
      roleChanged: (id, role, term) => this.listener.roleChanged?.(id, role, term),
      voteGranted: (id, term, candidate) => this.listener.voteGranted?.(id, term, candidate),
    };
    this.runtimeContext = { sim: this.sim, trace: this.trace, checker: this.checker, listener, send: (envelope: Envelope) => this.send(envelope) };
    for (const id of this.foundingIds) this.createRuntime(id, this.membership);
  }

  private createRuntime(id: NodeId, bootstrap: Membership): NodeRuntime {
    const disk = new SimDisk(bootstrap, (detail) => this.checker.report('storageContract', `n${id}: ${detail}`));
    const runtime = new NodeRuntime(id, disk, this.runtimeContext, this.runtimeOptions, this.rng.fork(`runtime/${id}`), this.rng.fork(`core/${id}`));
    this.runtimes.set(id, runtime);
    this.activeIds.push(id);
    return runtime;
  }

  runtime(id: NodeId): NodeRuntime {
    const runtime = this.runtimes.get(id);
    if (runtime === undefined) throw new RangeError(`no node n${id}`);
    return runtime;
  }

  has(id: NodeId): boolean {
    return this.runtimes.has(id);
  }

  /** Every runtime ever created, retired ones included (their disks stay for the checkers). */
  get all(): readonly NodeRuntime[] {
    return [...this.runtimes.values()];
  }

  /** The nodes that exist now (up or down), in id order: founding and joined, not retired. */
  get nodeIds(): readonly NodeId[] {
    return this.activeIds;
  }

  isRetired(id: NodeId): boolean {
    return this.retired.has(id);
  }

  // ---- Joining and leaving ----------------------------------------------------------------------

  /** The id a new node will get: never one used before. */
  allocateId(): NodeId {
    return this.idNext++;
  }

  /** Starts node `id` (from allocateId) with an empty disk; `leader`, which will add it, is the
   * member it asked what its log holds at index 0 (as JOIN asks GET /cluster/members). */
  provision(id: NodeId, leader: RaftNode | null): void {
    if (this.runtimes.has(id)) return;
    const bootstrap: Membership = this.joinBootstrap === 'fromLeader' ? (leader?.membershipAt(0) ?? { members: [] })
      : this.joinBootstrap === 'founding' ? this.membership
      : this.joinBootstrap === 'empty' ? { members: [] }
      : { members: [...this.membership.members, { id, role: 'learner', peerAddr: `n${id}:7001`, httpAddr: `n${id}:8001` }] };
    // The real node refuses an id named at index 0 (bootstrap.ts); the simulator never reuses ids.
    if (bootstrap.members.some((member) => member.id === id && this.joinBootstrap !== 'selfLearner')) throw new Error(`n${id}: a joining node's id is in its bootstrap membership`);
    const runtime = this.createRuntime(id, bootstrap);
    this.network.addNode(id);
    this.stats.nodesAdded++;
    this.trace.add(`n${id} provisioned with an empty disk (bootstrap membership {${bootstrap.members.map((m) => m.id).join(',')}})`);
    runtime.start();
  }

  /** Node `id` was removed from the cluster: shut it down for good. */
  retire(id: NodeId): void {
    if (this.retired.has(id) || !this.runtimes.has(id)) return;
    this.runtime(id).crash();
    this.retired.add(id);
    this.activeIds = this.activeIds.filter((other) => other !== id);
    this.stats.nodesRetired++;
    this.trace.add(`n${id} retired (removed from the cluster)`);
  }

  // ---- Life cycle -------------------------------------------------------------------------------

  startAll(): void {
    for (const id of this.activeIds) if (!this.runtime(id).isUp) this.runtime(id).start();
  }

  isUp(id: NodeId): boolean {
    return this.runtimes.get(id)?.isUp ?? false;
  }

  upIds(): NodeId[] {
    return this.activeIds.filter((id) => this.isUp(id));
  }

  downIds(): NodeId[] {
    return this.activeIds.filter((id) => !this.isUp(id));
  }

  crash(id: NodeId): void {
    if (!this.isUp(id)) return;
    this.stats.crashes++;
    this.runtime(id).crash();
  }

  restart(id: NodeId): void {
    if (this.isUp(id) || this.retired.has(id) || !this.runtimes.has(id)) return;
    this.stats.restarts++;
    this.runtime(id).start();
  }

  /** The up node that believes it leads in the highest term, if any. */
  leader(): NodeRuntime | undefined {
    let best: NodeRuntime | undefined;
    for (const id of this.activeIds) {
      const runtime = this.runtime(id);
      const node = runtime.node;
      if (node === null || node.role !== 'leader') continue;
      if (best === undefined || node.term > (best.node?.term ?? 0)) best = runtime;
    }
    return best;
  }

  /** When node `id` will take a client's request that arrives now (later if its loop is stalled). */
  availableAt(id: NodeId): Micros {
    return this.runtimes.get(id)?.availableAt ?? this.sim.now;
  }

  /** A client's request reached node `id`; null when the node is down. */
  propose(id: NodeId, command: KvCommand, resolve: (outcome: ProposalOutcome) => void): ProposeResult | null {
    return this.runtimes.get(id)?.propose(command, resolve) ?? null;
  }

  /** A client's ReadIndex read reached node `id`; null when the node is down. */
  read(id: NodeId, context: number, key: string, resolve: (outcome: ProposalOutcome) => void): ReadIndexResult | null {
    return this.runtimes.get(id)?.read(context, key, resolve) ?? null;
  }

  /** Whether the log of node `id` (memory, then disk) holds (index, term), or its snapshot covers it. */
  holds(id: NodeId, index: Index, term: Term): boolean {
    const runtime = this.runtime(id);
    if (index <= runtime.disk.current.snapshot.index) return true;
    return runtime.termAt(index) === term;
  }

  // ---- Messages ---------------------------------------------------------------------------------

  private send(envelope: Envelope): void {
    if (envelope.message.type === 'snapshotRequest') {
      this.streamSnapshot(envelope);
      return;
    }
    this.network.send(envelope.message.from, envelope.message.to, envelope);
  }

  private deliver(_from: NodeId, to: NodeId, envelope: Envelope): void {
    const runtime = this.runtimes.get(to);
    const up = runtime !== undefined && runtime.isUp;
    if (this.trace.enabled) this.trace.add(`${up ? 'recv' : 'drop(down)'} ${describeMessage(envelope.message)}`);
    if (up) runtime.receive(envelope);
  }

  /**
   * Streams a snapshot to its receiver chunk by chunk. Each chunk needs the link up and both ends
   * still in the incarnation that started the transfer; otherwise, or on a random reset, the stream
   * breaks: after a detection delay (an application-level timeout) the sender's core hears "failed"
   * and the receiver drops what it staged.
   */
  private streamSnapshot(envelope: Envelope): void {
    const message = envelope.message;
    const from = message.from;
    const to = message.to;
    const receiver = this.runtimes.get(to);
    const image = envelope.image;
    const rng = this.streamRng;
    if (receiver === undefined || image === null || !receiver.isUp) {
      this.sim.after(rng.intBetween(ms(1), ms(20)), () => this.reportSnapshot(from, to, envelope, false));
      return;
    }
    this.stats.snapshotStreams++;
    const streamId = ++this.streamIdNext;
    const chunkCount = rng.intBetween(1, this.streamOptions.chunkCountMax);
    const pairs = image.pairs;
    const perChunk = Math.ceil(pairs.length / chunkCount);
    const receiverIncarnation = receiver.incarnation;
    const senderIncarnation = envelope.senderIncarnation;
    const resetBefore = rng.chance(this.streamOptions.resetProbability) ? rng.intBetween(0, chunkCount - 1) : -1;
    if (this.trace.enabled) this.trace.add(`stream #${streamId} ${describeMessage(message)} in ${chunkCount} chunks`);
    const broken = (reason: string): void => {
      this.stats.snapshotStreamsBrokenOff++;
      if (this.trace.enabled) this.trace.add(`stream #${streamId} n${from}->n${to} broke off: ${reason}`);
      this.sim.after(rng.intBetween(0, ms(50)), () => {
        if (receiver.incarnation === receiverIncarnation) receiver.abortSnapshotStream(streamId, envelope);
      });
      this.sim.after(rng.intBetween(0, ms(50)), () => this.reportSnapshot(from, to, envelope, false));
    };
    const step = (chunk: number): void => {
      const sender = this.runtimes.get(from);
      if (chunk === resetBefore) return broken('connection reset');
      if (!this.network.isLinkUp(from, to)) return broken('link cut');
      if (receiver.incarnation !== receiverIncarnation || !receiver.isUp) return broken('receiver crashed');
      if (sender === undefined || sender.incarnation !== senderIncarnation) return broken('sender crashed');
      if (chunk < chunkCount) {
        receiver.stageSnapshotChunk(streamId, chunk, chunkCount, pairs.slice(chunk * perChunk, (chunk + 1) * perChunk));
        this.sim.after(rng.intBetween(ms(1), ms(10)), () => step(chunk + 1));
        return;
      }
      const delivered = receiver.completeSnapshotStream(streamId, envelope);
      if (this.trace.enabled) this.trace.add(`stream #${streamId} n${from}->n${to} complete${delivered ? '' : ' but not delivered'}`);
      const ackLost = delivered && rng.chance(this.streamOptions.ackLostProbability);
      if (ackLost) this.stats.snapshotAcksLost++;
      this.sim.after(rng.intBetween(ms(1), ms(5)) + (ackLost ? ms(30) : 0), () => this.reportSnapshot(from, to, envelope, delivered && !ackLost));
    };
    this.sim.after(rng.intBetween(ms(1), ms(5)), () => step(0));
  }

  private reportSnapshot(from: NodeId, to: NodeId, envelope: Envelope, ok: boolean): void {
    if (envelope.snapshotReported) return;
    envelope.snapshotReported = true;
    if (this.trace.enabled) this.trace.add(`n${from} told snapshot to n${to} ${ok ? 'done' : 'failed'}`);
    this.runtimes.get(from)?.reportSnapshot(to, ok, envelope.senderIncarnation);
  }
}
