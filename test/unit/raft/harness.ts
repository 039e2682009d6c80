// A tiny, fully controlled network for scenario tests of the Raft core: messages are queued and
// delivered only when a test says so, every Ready is persisted at once, and each delivered message
// is written to a readable trace such as "1->2 voteRequest t2 pre last=0/0".

import { RaftNode } from '../../../src/raft/node.js';
import {
  defaultRaftConfig, type Entry, type Member, type Membership, type Message, type NodeId, type RaftConfig,
  type RaftInitialState, type RandomSource, type Ready, type ReadState, type SnapshotMeta,
} from '../../../src/raft/types.js';

/** A deterministic RandomSource: always the lowest value, unless a test scripts a sequence. */
export class ScriptedRandom implements RandomSource {
  constructor(private readonly values: number[] = []) {}
  nextInt(maxExclusive: number): number {
    const value = this.values.length > 0 ? (this.values.shift() as number) : 0;
    return Math.min(value, maxExclusive - 1);
  }
}

export function members(ids: readonly NodeId[], learners: readonly NodeId[] = []): Membership {
  const toMember = (id: NodeId, role: Member['role']): Member => ({ id, role, peerAddr: `127.0.0.1:${50050 + id}`, httpAddr: `127.0.0.1:${8080 + id}` });
  return { members: [...ids.map((id) => toMember(id, 'voter')), ...learners.map((id) => toMember(id, 'learner'))] };
}

export function describe(message: Message): string {
  const head = `${message.from}->${message.to} ${message.type} t${message.term}`;
  switch (message.type) {
    case 'voteRequest': return `${head}${message.preVote ? ' pre' : ''}${message.transfer ? ' transfer' : ''} last=${message.lastLogIndex}/${message.lastLogTerm}`;
    case 'voteResponse': return `${head}${message.preVote ? ' pre' : ''} ${message.granted ? 'granted' : 'rejected'}`;
    case 'appendRequest': return `${head} prev=${message.prevLogIndex}/${message.prevLogTerm} entries=[${message.entries.map((e) => `${e.index}/${e.term}`).join(',')}] commit=${message.leaderCommit}`;
    case 'appendResponse': return message.success ? `${head} ok match=${message.matchIndex}` : `${head} reject prev=${message.rejectedIndex} hint=${message.conflictIndex}/${message.conflictTerm}`;
    case 'heartbeatRequest': return `${head} commit=${message.commitIndex} ctx=${message.context}`;
    case 'heartbeatResponse': return `${head} ctx=${message.context}`;
    case 'snapshotRequest': return `${head} snapshot=${message.snapshot.index}/${message.snapshot.term}`;
    case 'timeoutNow': return head;
    case 'readIndexRequest': return `${head} ctx=${message.context}`;
    case 'readIndexResponse': return `${head} ctx=${message.context} index=${message.readIndex}`;
  }
}

export interface HarnessOptions {
  readonly learners?: readonly NodeId[];
  readonly configure?: (config: RaftConfig) => RaftConfig;
  readonly nodeFactory?: (config: RaftConfig, initial: RaftInitialState) => RaftNode;
  /** Start a node from a given log and term instead of empty (for scripted histories). */
  readonly logs?: Readonly<Record<number, { readonly term: number; readonly votedFor?: number; readonly entries: readonly string[]; readonly commit?: number }>>;
}

/** Log entries from "index/term" strings; the commands carry their own "index/term" as data. */
export function entriesOf(specs: readonly string[]): Entry[] {
  return specs.map((spec) => {
    const [index, term] = spec.split('/').map(Number);
    return { kind: 'command', index, term, data: new TextEncoder().encode(spec) };
  });
}

export class TestCluster {
  readonly nodes = new Map<NodeId, RaftNode>();
  /** Messages sent and not yet delivered, in order. */
  queue: Message[] = [];
  /** Every message delivered, described. */
  trace: string[] = [];
  readonly applied = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  readonly snapshotsInstalled = new Map<NodeId, SnapshotMeta[]>();
  /** Nodes cut off: messages to or from them are dropped. */
  readonly isolated = new Set<NodeId>();
  /** Messages seen in Ready.messagesNow (leader traffic that may leave before persistence). */
  readonly sentBeforePersist: Message[] = [];

  constructor(ids: readonly NodeId[], options: HarnessOptions = {}) {
    const membership = members(ids, options.learners ?? []);
    for (const member of membership.members) {
      let config = defaultRaftConfig(member.id, new ScriptedRandom());
      if (options.configure) config = options.configure(config);
      const log = options.logs?.[member.id];
      const initial: RaftInitialState = {
        hardState: { term: log?.term ?? 0, votedFor: log?.votedFor ?? 0, commitIndex: log?.commit ?? 0 },
        snapshot: { index: 0, term: 0, membership },
        entries: entriesOf(log?.entries ?? []),
        appliedIndex: 0,
      };
      const node = options.nodeFactory ? options.nodeFactory(config, initial) : new RaftNode(config, initial);
      this.nodes.set(member.id, node);
      this.applied.set(member.id, []);
      this.readStates.set(member.id, []);
      this.snapshotsInstalled.set(member.id, []);
    }
  }

  node(id: NodeId): RaftNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Handle every pending Ready as a runtime would, persisting instantly. */
  flush(): void {
    for (const [id, node] of this.nodes) {
      while (node.hasReady()) this.handleReady(id, node.ready(), node);
    }
  }

  private handleReady(id: NodeId, ready: Ready, node: RaftNode): void {
    this.sentBeforePersist.push(...ready.messagesNow);
    this.enqueue(ready.messagesNow);
    if (ready.snapshot !== null) this.snapshotsInstalled.get(id)?.push(ready.snapshot);
    this.enqueue(ready.messagesAfterPersist);
    this.applied.get(id)?.push(...ready.committedEntries);
    this.readStates.get(id)?.push(...ready.readStates);
    node.advance();
  }

  private enqueue(messages: readonly Message[]): void {
    for (const message of messages) {
      if (this.isolated.has(message.from) || this.isolated.has(message.to)) continue;
      this.queue.push(message);
    }
  }

  /** Deliver queued messages (and the ones they cause) until none are left, or `limit` rounds. */
  deliverAll(filter: (message: Message) => boolean = () => true, limit = 1000): void {
    this.flush();
    for (let round = 0; round < limit && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const message of batch) {
        if (!filter(message) || this.isolated.has(message.to) || this.isolated.has(message.from)) continue;
        this.trace.push(describe(message));
        this.nodes.get(message.to)?.step(message);
      }
      this.flush();
    }
  }

  /** Deliver one message type only, keeping the rest queued. */
  deliverOnly(predicate: (message: Message) => boolean): void {
    this.flush();
    const keep: Message[] = [];
    const deliver: Message[] = [];
    for (const message of this.queue) (predicate(message) ? deliver : keep).push(message);
    this.queue = keep;
    for (const message of deliver) {
      this.trace.push(describe(message));
      this.nodes.get(message.to)?.step(message);
    }
    this.flush();
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).tick();
    this.flush();
  }

  /** Let time pass for everyone: each round ticks every node (not isolated ones' peers' messages)
   * once and delivers all messages. */
  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      for (const node of this.nodes.values()) node.tick();
      this.deliverAll();
    }
  }

  /** Tick `id` until its election timeout fires, then let the election run to the end. */
  elect(id: NodeId): void {
    const node = this.node(id);
    for (let i = 0; i < 100 && node.role !== 'preCandidate' && node.role !== 'candidate' && node.role !== 'leader'; i++) node.tick();
    this.deliverAll();
  }

  propose(id: NodeId, text: string): ReturnType<RaftNode['propose']> {
    const result = this.node(id).propose(new TextEncoder().encode(text));
    this.flush();
    return result;
  }

  appliedCommands(id: NodeId): string[] {
    return (this.applied.get(id) ?? []).filter((e) => e.kind === 'command').map((e) => new TextDecoder().decode((e as { data: Uint8Array }).data));
  }

  takeTrace(): string[] {
    const trace = this.trace;
    this.trace = [];
    return trace;
  }
}
