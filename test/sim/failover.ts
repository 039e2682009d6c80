// Failover time, measured in simulation with the product's defaults (150-300 ms election timeout,
// 50 ms heartbeats, ticks of 10 ms) and 1-5 ms network delay: a calm cluster elects a leader and
// commits, runs stable for a random while, then its leader crashes; we measure the time until a new
// leader has committed an entry of its own term, and count the election rounds it took (terms in
// which a real election started, up to the winning one: more than one means split votes).

import type { NodeId, Term } from '../../src/raft/types.js';
import { Cluster } from './cluster.js';
import { ms, type Micros } from './events.js';
import { rootRng } from './rng.js';
import type { NodeFactory } from './runtime.js';

export interface FailoverOptions {
  readonly nodeCount?: number;
  readonly nodeFactory?: NodeFactory;
  /** Give up on a trial after this long without a new leader committing. */
  readonly timeoutMs?: number;
}

export interface FailoverTrial {
  readonly seed: number;
  /** Crash of the old leader to the new leader's first commit; null when it never happened. */
  readonly failoverMs: number | null;
  /** Terms in which a real election started, up to the winning one. */
  readonly rounds: number;
}

export function runFailoverTrial(seed: number, options: FailoverOptions = {}): FailoverTrial {
  const rng = rootRng(seed).fork('failover');
  const cluster = new Cluster({
    nodeCount: options.nodeCount ?? 3,
    rng,
    trace: false,
    network: { delayMicrosMin: ms(1), delayMicrosMax: ms(5) },
    runtime: options.nodeFactory !== undefined ? { nodeFactory: options.nodeFactory } : {},
  });
  const sim = cluster.sim;
  let committedTerm: Term = 0;
  let committedAt: Micros = 0;
  cluster.listener.leaderCommitted = (_id: NodeId, term: Term) => {
    if (term > committedTerm) {
      committedTerm = term;
      committedAt = sim.now;
      sim.stop();
    }
  };
  const electionTerms = new Set<Term>();
  cluster.listener.coreEvent = (_id, event) => {
    if (event.type === 'electionStarted' && !event.preVote) electionTerms.add(event.term);
  };
  cluster.startAll();
  const timeoutMicros = ms(options.timeoutMs ?? 10_000);
  sim.runUntil(timeoutMicros);
  const leader = cluster.leader();
  if (committedTerm === 0 || leader === undefined) return { seed, failoverMs: null, rounds: 0 };

  // Stable for a while, then crash the leader at a random point of its heartbeat cycle.
  sim.runUntil(sim.now + rng.intBetween(ms(200), ms(700)));
  const stable = cluster.leader();
  if (stable === undefined || stable.node === null) return { seed, failoverMs: null, rounds: 0 };
  const oldTerm = stable.node.term;
  electionTerms.clear();
  const crashedAt = sim.now;
  cluster.crash(stable.id);
  sim.runUntil(crashedAt + timeoutMicros);
  if (committedTerm <= oldTerm) return { seed, failoverMs: null, rounds: electionTerms.size };
  let rounds = 0;
  for (const term of electionTerms) if (term > oldTerm && term <= committedTerm) rounds++;
  return { seed, failoverMs: (committedAt - crashedAt) / 1000, rounds };
}

export interface FailoverSummary {
  readonly trials: number;
  readonly failed: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly roundsPerElection: number;
  readonly splitVoteElections: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank] as number;
}

export function runFailover(trials: number, options: FailoverOptions = {}, firstSeed = 1): FailoverSummary {
  const durations: number[] = [];
  let failed = 0;
  let rounds = 0;
  let split = 0;
  for (let k = 0; k < trials; k++) {
    const trial = runFailoverTrial(firstSeed + k, options);
    if (trial.failoverMs === null) {
      failed++;
      continue;
    }
    durations.push(trial.failoverMs);
    rounds += trial.rounds;
    if (trial.rounds > 1) split++;
  }
  durations.sort((a, b) => a - b);
  const measured = durations.length;
  return {
    trials,
    failed,
    medianMs: percentile(durations, 0.5),
    p99Ms: percentile(durations, 0.99),
    maxMs: durations[measured - 1] ?? NaN,
    meanMs: measured === 0 ? NaN : durations.reduce((sum, d) => sum + d, 0) / measured,
    roundsPerElection: measured === 0 ? NaN : rounds / measured,
    splitVoteElections: split,
  };
}
