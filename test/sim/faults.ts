// The random fault schedule of a run: every so often, one fault from a weighted menu. Partitions of
// three kinds (a random split in two, one-way cuts, the leader isolated), heals, crashes of one
// node, of the leader, and now and then of a majority (each restarted after a random downtime),
// stalls of a node's event loop (a long GC pause), leadership transfers, compaction of a node's log
// at a random point (so followers and joining nodes need snapshots), a crash of a node right after it
// grants a vote (restarted a few milliseconds later: what it promised must have been on disk), and
// bursts of loss, duplication and deep reordering. Quiet spells let the cluster make progress.
// Faults pick among the nodes that exist now (founding and joined, not retired).

import type { NodeId } from '../../src/raft/types.js';
import type { Cluster } from './cluster.js';
import { ms, type Micros } from './events.js';
import type { NetworkOptions } from './network.js';
import type { Rng } from './rng.js';

export type FaultKind =
  | 'quiet' | 'split' | 'oneWay' | 'isolateLeader' | 'heal' | 'crashOne' | 'crashLeader' | 'crashMajority'
  | 'lossBurst' | 'duplicateBurst' | 'reorderBurst' | 'pause' | 'transfer' | 'compact' | 'crashAfterVote';

export const DEFAULT_FAULT_WEIGHTS: readonly (readonly [FaultKind, number])[] = [
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
  ['transfer', 1.5],
  ['compact', 2],
  ['crashAfterVote', 0.5],
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
  /** Overrides of the menu's weights (a test focusing on one fault). */
  readonly weights?: Partial<Record<FaultKind, number>>;
  /** Probability that any granted vote gets its voter crashed right after (besides 'crashAfterVote'). */
  readonly voteCrashProbability?: number;
}

export type FaultCounts = Partial<Record<FaultKind, number>>;

function choose(rng: Rng, weights: readonly (readonly [FaultKind, number])[]): FaultKind {
  const total = weights.reduce((sum, [, weight]) => sum + weight, 0);
  let draw = rng.nextFloat() * total;
  for (const [kind, weight] of weights) {
    draw -= weight;
    if (draw < 0) return kind;
  }
  return 'quiet';
}

export class FaultSchedule {
  readonly counts: FaultCounts = {};
  private burstEndsMicros = 0;
  private readonly weights: readonly (readonly [FaultKind, number])[];
  /** 'crashAfterVote' was injected: the next node to grant a vote crashes right after. */
  private voteCrashArmed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly rng: Rng,
    private readonly options: FaultScheduleOptions,
  ) {
    const overrides = options.weights ?? {};
    this.weights = DEFAULT_FAULT_WEIGHTS.map(([kind, weight]) => [kind, overrides[kind] ?? weight] as const);
  }

  start(): void {
    this.cluster.listener.voteGranted = (id) => this.onVoteGranted(id);
    this.scheduleNext();
  }

  /** A node is granting a vote: maybe crash it right after the message left, and restart it soon. */
  private onVoteGranted(id: NodeId): void {
    const cluster = this.cluster;
    if (cluster.sim.now >= this.options.endMicros) return;
    const armed = this.voteCrashArmed;
    if (!armed && !this.rng.chance(this.options.voteCrashProbability ?? 0)) return;
    this.voteCrashArmed = false;
    const incarnation = cluster.runtime(id).incarnation;
    cluster.sim.after(this.rng.intBetween(0, ms(1)), () => {
      if (cluster.runtime(id).incarnation !== incarnation || !cluster.isUp(id)) return;
      cluster.crash(id);
      this.note('crashAfterVote', `crash n${id} right after it granted a vote`);
      cluster.sim.after(this.rng.intBetween(ms(1), ms(10)), () => cluster.restart(id));
    });
  }

  private scheduleNext(): void {
    const sim = this.cluster.sim;
    const at = sim.now + this.rng.intBetween(this.options.gapMicrosMin, this.options.gapMicrosMax);
    if (at >= this.options.endMicros) return;
    sim.at(at, () => {
      this.inject(choose(this.rng, this.weights));
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
        // Leadership transfer (thesis 3.10) to a random member (a learner is refused), or to the
        // most up-to-date voter.
        const leader = cluster.leader();
        if (leader === undefined || leader.isPaused || leader.node === null) return;
        const others = leader.node.membership.members.map((member) => member.id).filter((id) => id !== leader.id);
        const to = rng.chance(0.3) || others.length === 0 ? null : rng.pick(others);
        const result = leader.transferLeadership(to);
        this.note(kind, `transfer leadership n${leader.id} -> ${to === null ? 'best' : `n${to}`}: ${JSON.stringify(result)}`);
        return;
      }
      case 'compact': {
        // A snapshot and compaction at a random point, most often on the leader, so that lagging
        // followers and joining nodes must be sent a snapshot.
        const leader = cluster.leader();
        const up = cluster.upIds();
        if (up.length === 0) return;
        const id = leader !== undefined && rng.chance(0.6) ? leader.id : rng.pick(up);
        const keep = rng.chance(0.5) ? 0 : rng.intBetween(1, 20);
        cluster.runtime(id).compactNow(keep);
        this.note(kind, `compact n${id} keeping ${keep} entries`);
        return;
      }
      case 'crashAfterVote':
        this.voteCrashArmed = true;
        this.note(kind, 'the next node to grant a vote will crash right after');
        return;
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
