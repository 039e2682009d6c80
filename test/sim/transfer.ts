// The client-visible pause of a leadership transfer (thesis 3.10), measured in simulation with the
// product's defaults (150-300 ms election timeout, 50 ms heartbeats, ticks of 10 ms) and 1-5 ms
// network delay: a calm cluster serves a few clients that write steadily; once it is stable, the
// leader is asked to hand leadership to a random voter (or, in some trials, to the most up-to-date
// one). We measure from the transfer call to the first write acknowledged to a client that the new
// leader proposed (an entry of a later term), so the pause includes the clients finding the new
// leader. Separately, the time until the new leader committed an entry of its term (its no-op).

import type { NodeId, Term } from '../../src/raft/types.js';
import { Cluster } from './cluster.js';
import { ms, type Micros } from './events.js';
import { rootRng } from './rng.js';
import { Workload } from './workload.js';

export interface TransferOptions {
  readonly nodeCount?: number;
  readonly clientCount?: number;
  /** Give up on a trial after this long without a write by a new leader. */
  readonly timeoutMs?: number;
}

export interface TransferTrial {
  readonly seed: number;
  /** Transfer call to the first write acknowledged from a new leader; null if none came. */
  readonly pauseMs: number | null;
  /** Transfer call to the new leader's first commit of its own term. */
  readonly leaderReadyMs: number | null;
  /** The transfer went where it was asked (or to the voter chosen as most up to date). */
  readonly reachedTarget: boolean;
}

export function runTransferTrial(seed: number, options: TransferOptions = {}): TransferTrial {
  const rng = rootRng(seed).fork('transfer');
  const cluster = new Cluster({
    nodeCount: options.nodeCount ?? 3, rng, trace: false, network: { delayMicrosMin: ms(1), delayMicrosMax: ms(5) },
  });
  const sim = cluster.sim;
  const failed: TransferTrial = { seed, pauseMs: null, leaderReadyMs: null, reachedTarget: false };
  let committedTerm: Term = 0;
  let committedBy: NodeId = 0;
  let committedAt: Micros = 0;
  let started = false;
  cluster.listener.leaderCommitted = (id: NodeId, term: Term) => {
    if (term > committedTerm) {
      committedTerm = term;
      committedBy = id;
      committedAt = sim.now;
      if (!started) sim.stop();
    }
  };
  const workload = new Workload(cluster, rng.fork('workload'), {
    clientCount: options.clientCount ?? 4, putProbability: 0.7, deleteProbability: 0.1,
  });
  cluster.startAll();
  workload.start();
  const timeoutMicros = ms(options.timeoutMs ?? 10_000);
  sim.runUntil(timeoutMicros);
  // Stable for a while after the first leader committed, then the transfer.
  if (committedTerm === 0) return failed;
  sim.runUntil(sim.now + rng.intBetween(ms(200), ms(700)));
  const leader = cluster.leader();
  if (leader === undefined || leader.node === null) return failed;
  const oldTerm = leader.node.term;
  const others = cluster.nodeIds.filter((id) => id !== leader.id);
  const asked = rng.chance(0.3) ? null : rng.pick(others);
  const startedAt = sim.now;
  started = true;
  const result = leader.transferLeadership(asked);
  if (result === null || !result.ok) return failed;
  const target = result.to;
  let pauseMicros: Micros | null = null;
  workload.onComplete = (operation) => {
    if (pauseMicros !== null || operation.status !== 'ok' || operation.kind === 'get') return;
    const write = workload.acknowledged[workload.acknowledged.length - 1];
    if (write !== undefined && write.term > oldTerm) {
      pauseMicros = sim.now - startedAt;
      sim.stop();
    }
  };
  sim.runUntil(startedAt + timeoutMicros);
  workload.stopIssuing();
  return {
    seed,
    pauseMs: pauseMicros === null ? null : pauseMicros / 1000,
    leaderReadyMs: committedTerm > oldTerm ? (committedAt - startedAt) / 1000 : null,
    reachedTarget: committedTerm > oldTerm && committedBy === target,
  };
}

export interface TransferSummary {
  readonly trials: number;
  readonly failed: number;
  readonly missedTarget: number;
  readonly pause: Distribution;
  readonly leaderReady: Distribution;
}

export interface Distribution {
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (fraction: number): number => {
    if (sorted.length === 0) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] as number;
  };
  return { medianMs: at(0.5), p99Ms: at(0.99), maxMs: sorted[sorted.length - 1] ?? NaN };
}

export function runTransfers(trials: number, options: TransferOptions = {}, firstSeed = 1): TransferSummary {
  const pauses: number[] = [];
  const ready: number[] = [];
  let failed = 0;
  let missedTarget = 0;
  for (let k = 0; k < trials; k++) {
    const trial = runTransferTrial(firstSeed + k, options);
    if (trial.pauseMs === null) {
      failed++;
      continue;
    }
    pauses.push(trial.pauseMs);
    if (trial.leaderReadyMs !== null) ready.push(trial.leaderReadyMs);
    if (!trial.reachedTarget) missedTarget++;
  }
  return { trials, failed, missedTarget, pause: distribution(pauses), leaderReady: distribution(ready) };
}
