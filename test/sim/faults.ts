// The random fault schedule of a run: every so often, one fault from a weighted menu. Partitions of
// three kinds (a random split in two, one-way cuts, the leader isolated), heals, crashes of one
// node, of the leader, and now and then of a majority (each restarted after a random downtime),
// stalls of a node's event loop (a long GC pause), leadership transfers, and bursts of loss,
// duplication and deep reordering. Quiet spells let the cluster make progress.

import type { NodeId } from '../../src/raft/types.js';
import type { Cluster } from './cluster.js';
import { ms, type Micros } from './events.js';
import type { NetworkOptions } from './network.js';
import type { Rng } from './rng.js';

export type FaultKind =
  | 'quiet' | 'split' | 'oneWay' | 'isolateLeader' | 'heal' | 'crashOne' | 'crashLeader' | 'crashMajority'
  | 'lossBurst' | 'duplicateBurst' | 'reorderBurst' | 'pause' | 'transfer';

const WEIGHTS: readonly (readonly [FaultKind, number])[] = [
  ['quiet', 6],
  ['split', 3],
  ['oneWay', 2],
  ['isolateLeader', 2],
  ['heal', 4],
  ['crashOne', 3],
  ['crashLeader', 2],
  ['crashMajority', 0.5],
  ['lossBurst', 1.5],
  ['duplicateBurst', 1],
  ['reorderBurst', 1],
  ['pause', 1.5],
  ['transfer', 1],
];

export interface FaultScheduleOptions {
  /** Faults stop being injected at this simulated time. */
  readonly endMicros: Micros;
  readonly gapMicrosMin: Micros;
  readonly gapMicrosMax: Micros;
  readonly downtimeMicrosMin: Micros;
  readonly downtimeMicrosMax: Micros;
  /** The network settings outside bursts. */
  readonly baseline: Partial<NetworkOptions>;
}

export type FaultCounts = Partial<Record<FaultKind, number>>;

function choose(rng: Rng): FaultKind {
  const total = WEIGHTS.reduce((sum, [, weight]) => sum + weight, 0);
  let draw = rng.nextFloat() * total;
  for (const [kind, weight] of WEIGHTS) {
    draw -= weight;
    if (draw < 0) return kind;
  }
  return 'quiet';
}

export class FaultSchedule {
  readonly counts: FaultCounts = {};
  private burstEndsMicros = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly rng: Rng,
    private readonly options: FaultScheduleOptions,
  ) {}

  start(): void {
    this.scheduleNext();
  }

  private scheduleNext(): void {
    const sim = this.cluster.sim;
    const at = sim.now + this.rng.intBetween(this.options.gapMicrosMin, this.options.gapMicrosMax);
    if (at >= this.options.endMicros) return;
    sim.at(at, () => {
      this.inject(choose(this.rng));
      this.scheduleNext();
    });
  }

  private note(kind: FaultKind, text: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    this.cluster.trace.add(`FAULT ${text}`);
  }

  private get minority(): number {
    return Math.floor((this.cluster.nodeIds.length - 1) / 2);
  }

  private inject(kind: FaultKind): void {
    const cluster = this.cluster;
    const network = cluster.network;
    const rng = this.rng;
    switch (kind) {
      case 'quiet':
        return;
      case 'split': {
        const shuffled = rng.shuffled(cluster.nodeIds);
        const size = rng.intBetween(1, shuffled.length - 1);
        const groups = [shuffled.slice(0, size).sort(), shuffled.slice(size).sort()];
        network.partition(groups);
        this.note(kind, `partition {${groups[0]?.join(',')}} | {${groups[1]?.join(',')}}`);
        return;
      }
      case 'oneWay': {
        const count = rng.intBetween(1, 3);
        const cuts: string[] = [];
        for (let k = 0; k < count; k++) {
          const from = rng.pick(cluster.nodeIds);
          const to = rng.pick(cluster.nodeIds.filter((id) => id !== from));
          network.cutOneWay(from, to);
          cuts.push(`n${from}->n${to}`);
        }
        this.note(kind, `one-way cut ${cuts.join(' ')}`);
        return;
      }
      case 'isolateLeader': {
        const leader = cluster.leader();
        if (leader === undefined) return;
        network.isolate(leader.id);
        this.note(kind, `isolate leader n${leader.id}`);
        return;
      }
      case 'heal':
        network.heal();
        this.note(kind, 'heal network');
        return;
      case 'crashOne': {
        const up = cluster.upIds();
        if (cluster.downIds().length >= this.minority || up.length === 0) return;
        this.crash([rng.pick(up)], kind);
        return;
      }
      case 'crashLeader': {
        const leader = cluster.leader();
        if (leader === undefined || cluster.downIds().length >= this.minority) return;
        this.crash([leader.id], kind);
        return;
      }
      case 'crashMajority': {
        const up = rng.shuffled(cluster.upIds());
        const count = Math.min(up.length, this.minority + 1);
        this.crash(up.slice(0, count), kind);
        return;
      }
      case 'lossBurst':
        this.burst(kind, { lossProbability: 0.1 + 0.4 * rng.nextFloat() });
        return;
      case 'duplicateBurst':
        this.burst(kind, { duplicateProbability: 0.1 + 0.4 * rng.nextFloat() });
        return;
      case 'pause': {
        // A stalled event loop, most often the leader's: it wakes up still believing it leads.
        const leader = cluster.leader();
        const id = leader !== undefined && rng.chance(0.6) ? leader.id : rng.pick(cluster.nodeIds);
        if (!cluster.isUp(id)) return;
        const duration = rng.intBetween(ms(50), ms(1500));
        cluster.runtime(id).pause(duration);
        this.note(kind, `pause n${id} for ${(duration / 1000).toFixed(0)}ms`);
        return;
      }
      case 'transfer': {
        // Leadership transfer (thesis 3.10) to a random voter, or to the most up-to-date one.
        const leader = cluster.leader();
        if (leader === undefined || leader.isPaused) return;
        const others = cluster.nodeIds.filter((id) => id !== leader.id);
        const to = rng.chance(0.3) ? null : rng.pick(others);
        const result = leader.transferLeadership(to);
        this.note(kind, `transfer leadership n${leader.id} -> ${to === null ? 'best' : `n${to}`}: ${JSON.stringify(result)}`);
        return;
      }
      case 'reorderBurst':
        this.burst(kind, { delaySpikeProbability: 0.05 + 0.3 * rng.nextFloat(), delaySpikeMicrosMax: ms(50) });
        return;
    }
  }

  private crash(ids: readonly NodeId[], kind: FaultKind): void {
    if (ids.length === 0) return;
    const cluster = this.cluster;
    for (const id of ids) cluster.crash(id);
    this.note(kind, `crash ${ids.map((id) => `n${id}`).join(',')}`);
    for (const id of ids) {
      const downtime = this.rng.intBetween(this.options.downtimeMicrosMin, this.options.downtimeMicrosMax);
      cluster.sim.after(downtime, () => {
        if (cluster.sim.now >= this.options.endMicros) return; // the end of the run restarts it
        cluster.restart(id);
      });
    }
  }

  private burst(kind: FaultKind, changes: Partial<NetworkOptions>): void {
    const cluster = this.cluster;
    cluster.network.configure(changes);
    this.note(kind, `${kind} ${JSON.stringify(changes)}`);
    const until = cluster.sim.now + this.rng.intBetween(ms(50), ms(500));
    this.burstEndsMicros = Math.max(this.burstEndsMicros, until);
    cluster.sim.at(until, () => {
      if (cluster.sim.now < this.burstEndsMicros) return; // a later burst is still running
      cluster.network.configure(this.options.baseline);
      cluster.trace.add('FAULT burst over');
    });
  }
}
