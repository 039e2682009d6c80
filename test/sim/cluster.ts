// A whole cluster in one process: N node runtimes, their disks, the network between them, the
// safety checker and the trace. Crash drops a node's RaftNode object and its unsynced writes;
// restart rebuilds the node from what its disk durably holds.

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
  DEFAULT_TIMING, NodeRuntime, type Envelope, type NodeFactory, type ProposalOutcome, type RuntimeListener,
  type RuntimeOptions,
} from './runtime.js';
import { describeMessage, Trace } from './trace.js';

export interface ClusterOptions {
  readonly nodeCount: number;
  readonly rng: Rng;
  readonly trace: boolean;
  readonly network?: Partial<NetworkOptions>;
  readonly runtime?: Partial<RuntimeOptions>;
}

/** A snapshot transfer takes up to this much longer than an ordinary message. */
const SNAPSHOT_TRANSFER_MICROS_MAX = ms(50);

export const defaultNodeFactory: NodeFactory = (config, initial) => new RaftNode(config, initial);

export function foundingMembership(nodeIds: readonly NodeId[]): Membership {
  return {
    members: nodeIds.map((id) => ({ id, role: 'voter' as const, peerAddr: `n${id}:7001`, httpAddr: `n${id}:8001` })),
  };
}

export interface ClusterStats {
  crashes: number;
  restarts: number;
}

export class Cluster {
  readonly sim = new Simulation();
  readonly trace: Trace;
  readonly checker: SafetyChecker;
  readonly network: SimNetwork<Envelope>;
  readonly nodeIds: readonly NodeId[];
  readonly membership: Membership;
  /** Hooks for the run and the failover measurement; set fields at will. */
  readonly listener: RuntimeListener = {};
  readonly stats: ClusterStats = { crashes: 0, restarts: 0 };
  private readonly runtimes: NodeRuntime[];

  constructor(options: ClusterOptions) {
    this.nodeIds = Array.from({ length: options.nodeCount }, (_, k) => k + 1);
    this.membership = foundingMembership(this.nodeIds);
    this.trace = new Trace(options.trace, () => this.sim.now);
    this.checker = new SafetyChecker(
      {
        voterIds: this.nodeIds,
        durablyHolds: (id, index, term) => this.runtime(id).disk.durable.holds(index, term),
      },
      () => this.sim.now,
    );
    this.network = new SimNetwork<Envelope>(this.sim, options.rng.fork('network'), this.nodeIds, options.network ?? {}, {
      deliver: (from, to, envelope) => this.deliver(from, to, envelope),
      dropped: (from, to, envelope, reason) => {
        if (this.trace.enabled) this.trace.add(`drop(${reason}) ${describeMessage(envelope.message)}`);
        this.reportSnapshot(from, to, envelope, false);
      },
    });
    const runtimeOptions: RuntimeOptions = {
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
    };
    this.runtimes = this.nodeIds.map((id) => {
      const disk = new SimDisk(this.membership, (detail) => this.checker.report('storageContract', `n${id}: ${detail}`));
      const context = { sim: this.sim, trace: this.trace, checker: this.checker, listener, send: (envelope: Envelope) => this.send(envelope) };
      return new NodeRuntime(id, disk, context, runtimeOptions, options.rng.fork(`runtime/${id}`), options.rng.fork(`core/${id}`));
    });
  }

  runtime(id: NodeId): NodeRuntime {
    const runtime = this.runtimes[id - 1];
    if (runtime === undefined) throw new RangeError(`no node n${id}`);
    return runtime;
  }

  get all(): readonly NodeRuntime[] {
    return this.runtimes;
  }

  startAll(): void {
    for (const runtime of this.runtimes) if (!runtime.isUp) runtime.start();
  }

  isUp(id: NodeId): boolean {
    return this.runtime(id).isUp;
  }

  upIds(): NodeId[] {
    return this.nodeIds.filter((id) => this.isUp(id));
  }

  downIds(): NodeId[] {
    return this.nodeIds.filter((id) => !this.isUp(id));
  }

  crash(id: NodeId): void {
    if (!this.isUp(id)) return;
    this.stats.crashes++;
    this.runtime(id).crash();
  }

  restart(id: NodeId): void {
    if (this.isUp(id)) return;
    this.stats.restarts++;
    this.runtime(id).start();
  }

  /** The up node that believes it leads in the highest term, if any. */
  leader(): NodeRuntime | undefined {
    let best: NodeRuntime | undefined;
    for (const runtime of this.runtimes) {
      const node = runtime.node;
      if (node === null || node.role !== 'leader') continue;
      if (best === undefined || node.term > (best.node?.term ?? 0)) best = runtime;
    }
    return best;
  }

  /** When node `id` will take a client's request that arrives now (later if its loop is stalled). */
  availableAt(id: NodeId): Micros {
    return this.runtime(id).availableAt;
  }

  /** A client's request reached node `id`; null when the node is down. */
  propose(id: NodeId, command: KvCommand, resolve: (outcome: ProposalOutcome) => void): ProposeResult | null {
    return this.runtime(id).propose(command, resolve);
  }

  /** A client's ReadIndex read reached node `id`; null when the node is down. */
  read(id: NodeId, context: number, key: string, resolve: (outcome: ProposalOutcome) => void): ReadIndexResult | null {
    return this.runtime(id).read(context, key, resolve);
  }

  /** Whether the log of node `id` (memory, then disk) holds (index, term), or its snapshot covers it. */
  holds(id: NodeId, index: Index, term: Term): boolean {
    const runtime = this.runtime(id);
    if (index <= runtime.disk.current.snapshot.index) return true;
    return runtime.termAt(index) === term;
  }

  private send(envelope: Envelope): void {
    // A snapshot is streamed on a connection of its own and takes longer than a message.
    const extra = envelope.message.type === 'snapshotRequest' ? SNAPSHOT_TRANSFER_MICROS_MAX : 0;
    this.network.send(envelope.message.from, envelope.message.to, envelope, extra);
  }

  private deliver(from: NodeId, to: NodeId, envelope: Envelope): void {
    const runtime = this.runtimes[to - 1];
    const up = runtime !== undefined && runtime.isUp;
    if (this.trace.enabled) this.trace.add(`${up ? 'recv' : 'drop(down)'} ${describeMessage(envelope.message)}`);
    if (up) runtime.receive(envelope);
    this.reportSnapshot(from, to, envelope, up);
  }

  private reportSnapshot(from: NodeId, to: NodeId, envelope: Envelope, ok: boolean): void {
    if (envelope.message.type !== 'snapshotRequest' || envelope.snapshotReported) return;
    envelope.snapshotReported = true;
    this.runtimes[from - 1]?.reportSnapshot(to, ok, envelope.senderIncarnation);
  }
}
