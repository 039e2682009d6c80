// Simulated clients. Each client has one operation in flight at a time, on a few hot keys; every
// put writes a value never written before. A 'sticky' client sends to the node it believes leads
// (else a node at random); a 'random' client sends each operation to a node at random, the way a
// load balancer in front of the API would. A node that is not the leader but knows who is answers
// with a hint, and the request follows it (at most twice: a follower forwarding it), which is safe
// because the refusal means nothing was proposed. Some clients only read. A get goes through the log
// as a command or, as the seed chooses, through ReadIndex on the node it reaches (a follower asks the
// leader for the index).
// Client links have the usual 1-5 ms delay but are never cut: faults are between nodes. Outcomes,
// as a real client would learn them:
// - ok: the node it proposed to applied the entry at the returned index, with the same term and
//   the same operation id; the output (a get's value, a delete's verdict) is taken at apply time.
//   A ReadIndex get is ok once the node applied up to its read index; it reads the value then;
// - fail: propose() or readIndex() refused, or the node was down: definitely not in the log;
// - unknown: the node crashed or lost its leadership, the index turned out to hold another entry,
//   or the client's timeout passed. The operation may or may not take effect, at any later time.

import type { ReadIndexResult } from '../../src/raft/node.js';
import type { Index, NodeId, ProposeResult, Term } from '../../src/raft/types.js';
import type { Cluster } from './cluster.js';
import { MICROS_PER_MS, ms, type Micros } from './events.js';
import type { KvCommand, KvOp } from './kv.js';
import type { Rng } from './rng.js';
import type { ProposalOutcome } from './runtime.js';

export type OpStatus = 'ok' | 'fail' | 'unknown';

/** One client operation, in the shape the linearizability checker reads (test/lincheck/history.ts). */
export interface SimOperation {
  id: number;
  clientId: number;
  key: string;
  kind: KvOp;
  value?: string;
  output?: string | null;
  deleted?: boolean;
  /** Simulated milliseconds (what the checker's explanations show). */
  invokeTime: number;
  completeTime: number | null;
  status: OpStatus;
}

export interface WorkloadOptions {
  readonly clientCount: number;
  readonly keys: readonly string[];
  readonly clientTimeoutMicros: Micros;
  readonly thinkMicrosMin: Micros;
  readonly thinkMicrosMax: Micros;
  readonly linkMicrosMin: Micros;
  readonly linkMicrosMax: Micros;
  readonly putProbability: number;
  readonly deleteProbability: number;
  /** Probability that a get is served by ReadIndex (thesis 6.4) instead of going through the log. */
  readonly readIndexProbability: number;
  /** Probability that a client sends each operation to a node at random rather than to the leader. */
  readonly randomRoutingProbability: number;
  /** Probability that a client only reads. */
  readonly readerProbability: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  clientCount: 3,
  keys: ['a', 'b', 'c'],
  clientTimeoutMicros: ms(1000),
  thinkMicrosMin: ms(1),
  thinkMicrosMax: ms(20),
  linkMicrosMin: ms(1),
  linkMicrosMax: ms(5),
  putProbability: 0.5,
  deleteProbability: 0.15,
  readIndexProbability: 0,
  randomRoutingProbability: 0,
  readerProbability: 0,
};

/** Hops a request may take following "not leader" hints. */
const HOPS_MAX = 2;

export interface AcknowledgedWrite {
  readonly opId: number;
  readonly index: Index;
  readonly term: Term;
}

export interface WorkloadStats {
  ok: number;
  fail: number;
  unknown: number;
}

interface InFlight {
  readonly operation: SimOperation;
  done: boolean;
  index: Index;
  term: Term;
  /** A get served by ReadIndex rather than through the log. */
  readonly viaReadIndex: boolean;
}

export class Workload {
  readonly history: SimOperation[] = [];
  /** Every write (put or delete) acknowledged ok, with where it landed. */
  readonly acknowledged: AcknowledgedWrite[] = [];
  readonly stats: WorkloadStats = { ok: 0, fail: 0, unknown: 0 };
  private readonly options: WorkloadOptions;
  private issuing = false;
  private opIdNext = 1;
  private readonly believedLeader: NodeId[] = [];
  private readonly inFlight = new Map<number, InFlight>();
  private readonly putCount: number[] = [];
  private readonly randomRouting: boolean[] = [];
  private readonly reader: boolean[] = [];
  /** Called when an operation completes (for liveness checks). */
  onComplete: ((operation: SimOperation) => void) | null = null;

  constructor(
    private readonly cluster: Cluster,
    private readonly rng: Rng,
    options: Partial<WorkloadOptions> = {},
  ) {
    this.options = { ...DEFAULT_WORKLOAD, ...options };
  }

  get settings(): WorkloadOptions {
    return this.options;
  }

  start(): void {
    this.issuing = true;
    for (let client = 1; client <= this.options.clientCount; client++) {
      this.believedLeader[client] = 0;
      this.putCount[client] = 0;
      this.randomRouting[client] = this.rng.chance(this.options.randomRoutingProbability);
      // Client 1 always writes too: the run's liveness check waits for a write.
      this.reader[client] = this.rng.chance(this.options.readerProbability) && client > 1;
      this.cluster.sim.after(this.think(), () => this.issue(client));
    }
  }

  /** Clients stop sending new operations; those in flight still complete. */
  stopIssuing(): void {
    this.issuing = false;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The end of the run: whatever is still in flight stays unknown. */
  finish(): void {
    this.issuing = false;
    for (const flight of this.inFlight.values()) this.complete(flight, 'unknown');
    this.inFlight.clear();
  }

  private think(): Micros {
    return this.rng.intBetween(this.options.thinkMicrosMin, this.options.thinkMicrosMax);
  }

  private link(): Micros {
    return this.rng.intBetween(this.options.linkMicrosMin, this.options.linkMicrosMax);
  }

  private chooseNode(client: number): NodeId {
    const believed = this.randomRouting[client] === true ? 0 : (this.believedLeader[client] ?? 0);
    return believed !== 0 ? believed : this.rng.pick(this.cluster.nodeIds);
  }

  /** The kinds of client this run has, for the trace: "s" sticky, "r" random routing, "R" reader. */
  describeClients(): string {
    const kinds: string[] = [];
    for (let client = 1; client <= this.options.clientCount; client++) {
      kinds.push(`${this.randomRouting[client] === true ? 'r' : 's'}${this.reader[client] === true ? 'R' : ''}`);
    }
    return kinds.join(',');
  }

  private nextOperation(client: number): SimOperation {
    const id = this.opIdNext++;
    const key = this.rng.pick(this.options.keys);
    const draw = this.reader[client] === true ? 1 : this.rng.nextFloat();
    const now = this.cluster.sim.now / MICROS_PER_MS;
    if (draw < this.options.putProbability) {
      const count = (this.putCount[client] ?? 0) + 1;
      this.putCount[client] = count;
      return { id, clientId: client, key, kind: 'put', value: `c${client}.${count}`, invokeTime: now, completeTime: null, status: 'unknown' };
    }
    const kind: KvOp = draw < this.options.putProbability + this.options.deleteProbability ? 'delete' : 'get';
    return { id, clientId: client, key, kind, invokeTime: now, completeTime: null, status: 'unknown' };
  }

  private issue(client: number): void {
    if (!this.issuing) return;
    const operation = this.nextOperation(client);
    this.history.push(operation);
    const viaReadIndex = operation.kind === 'get' && this.rng.chance(this.options.readIndexProbability);
    const flight: InFlight = { operation, done: false, index: 0, term: 0, viaReadIndex };
    this.inFlight.set(operation.id, flight);
    const target = this.chooseNode(client);
    const command: KvCommand = operation.kind === 'put'
      ? { op: 'put', key: operation.key, value: operation.value ?? '', opId: operation.id }
      : { op: operation.kind, key: operation.key, opId: operation.id };
    const sim = this.cluster.sim;
    if (this.cluster.trace.enabled) {
      const how = viaReadIndex ? ' (ReadIndex)' : '';
      this.cluster.trace.add(`client ${client} op ${operation.id} ${operation.kind} ${operation.key}${operation.kind === 'put' ? `=${operation.value}` : ''}${how} -> n${target}`);
    }
    sim.after(this.options.clientTimeoutMicros, () => {
      if (flight.done) return;
      this.believedLeader[client] = 0;
      this.complete(flight, 'unknown');
    });
    const arrive = (to: NodeId, hops: number): void => {
      if (flight.done) return;
      // A stalled node reads the request from its socket only when it wakes up.
      if (this.cluster.availableAt(to) > sim.now) {
        sim.at(this.cluster.availableAt(to), () => arrive(to, hops));
        return;
      }
      const respond = (outcome: ProposalOutcome): void => {
        sim.after(this.link(), () => this.onOutcome(client, flight, outcome));
      };
      let result: ReadIndexResult | ProposeResult | null;
      if (flight.viaReadIndex) {
        result = this.cluster.read(to, operation.id, operation.key, respond);
      } else {
        const proposed = this.cluster.propose(to, command, respond);
        if (proposed?.ok === true) {
          flight.index = proposed.index;
          flight.term = proposed.term;
        }
        result = proposed;
      }
      if (result === null) {
        sim.after(this.link(), () => {
          this.believedLeader[client] = 0;
          this.complete(flight, 'fail');
        });
      } else if (!result.ok) {
        const hint = 'leaderId' in result ? result.leaderId : to;
        if (result.reason === 'notLeader' && hint !== 0 && hint !== to && hops < HOPS_MAX && this.cluster.has(hint)) {
          // Not proposed anywhere: follow the hint with the same operation.
          if (this.cluster.trace.enabled) this.cluster.trace.add(`client ${client} op ${operation.id}: n${to} says n${hint} leads`);
          sim.after(this.link(), () => arrive(hint, hops + 1));
          return;
        }
        sim.after(this.link(), () => {
          this.believedLeader[client] = hint !== to ? hint : 0;
          this.complete(flight, 'fail');
        });
      } else {
        this.believedLeader[client] = to;
      }
    };
    sim.after(this.link(), () => arrive(target, 0));
  }

  private onOutcome(client: number, flight: InFlight, outcome: ProposalOutcome): void {
    if (flight.done) return;
    if (outcome.status === 'unknown') {
      this.believedLeader[client] = 0;
      this.complete(flight, 'unknown');
      return;
    }
    const operation = flight.operation;
    const output = outcome.output;
    if (output.op === 'get') operation.output = output.value;
    if (output.op === 'delete') operation.deleted = output.deleted;
    if (operation.kind !== 'get') this.acknowledged.push({ opId: operation.id, index: flight.index, term: flight.term });
    this.complete(flight, 'ok');
  }

  private complete(flight: InFlight, status: OpStatus): void {
    if (flight.done) return;
    flight.done = true;
    this.inFlight.delete(flight.operation.id);
    const operation = flight.operation;
    operation.status = status;
    operation.completeTime = status === 'unknown' ? null : this.cluster.sim.now / MICROS_PER_MS;
    this.stats[status]++;
    if (this.cluster.trace.enabled) {
      const detail = operation.kind === 'put' ? `=${operation.value}` : operation.kind === 'get' && status === 'ok' ? ` -> ${operation.output}` :
        operation.kind === 'delete' && status === 'ok' ? ` -> ${operation.deleted}` : '';
      this.cluster.trace.add(`client ${operation.clientId} op ${operation.id} ${operation.kind} ${operation.key}${detail}: ${status}`);
    }
    this.onComplete?.(operation);
    const client = operation.clientId;
    // Without a leader to try, back off a little instead of spinning over the nodes.
    const backoff = status !== 'ok' && this.believedLeader[client] === 0 ? this.rng.intBetween(ms(5), ms(30)) : 0;
    if (this.issuing) this.cluster.sim.after(this.think() + backoff, () => this.issue(client));
  }
}
