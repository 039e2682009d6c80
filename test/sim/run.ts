// One simulated run: `runSeed(seed)` builds a cluster (3 or 5 nodes, chosen by the seed), runs the
// workload under a random fault schedule, then heals everything, restarts every crashed node and
// checks liveness (a leader is elected and a new write commits within a bounded time, then every
// node catches up to it), checks that no acknowledged write was lost, and checks the client history
// for linearizability. The safety checkers run all along; the run stops at the first violation.
// One seed is one run, exactly. Alongside the faults, an operator changes the membership (grow,
// shrink, replace, learners; see membership.ts) in most seeds.

import { performance } from 'node:perf_hooks';
import type { NodeId, RaftConfig } from '../../src/raft/types.js';
import { defaultRaftConfig } from '../../src/raft/types.js';
import { checkLinearizable } from '../lincheck/index.js';
import { memberIds } from '../../src/raft/membership.js';
import { Cluster, type ClusterStats, type JoinBootstrap, type SnapshotStreamOptions } from './cluster.js';
import { ms, type Micros } from './events.js';
import { FaultSchedule, type FaultCounts, type FaultKind } from './faults.js';
import { MembershipOperator, type MembershipMode, type MembershipStats } from './membership.js';
import type { NetworkOptions, NetworkStats } from './network.js';
import { rootRng, type Rng } from './rng.js';
import type { NodeFactory, RuntimeOptions } from './runtime.js';
import { Workload, type SimOperation, type WorkloadStats } from './workload.js';

export interface RunOptions {
  /** Builds each node's core; tests inject deliberately broken subclasses here. */
  readonly nodeFactory?: NodeFactory;
  /** Record a readable line per event (for replaying one seed). */
  readonly trace?: boolean;
  /** 3 or 5; by default the seed chooses. */
  readonly nodeCount?: number;
  /** Length of the fault phase, simulated milliseconds (default: the seed chooses, 5-40 s). */
  readonly chaosMs?: number;
  /** After the heal, a leader must be elected and a write commit within this long. */
  readonly livenessTimeoutMs?: number;
  /** Run the fault schedule (off: a calm run, for tests). */
  readonly faults?: boolean;
  /** Check the client history for linearizability at the end. */
  readonly lincheck?: boolean;
  readonly lincheckBudgetMs?: number;
  /** Snapshot every N applied entries (0: never); by default the seed chooses. */
  readonly snapshotIntervalEntries?: number;
  /** Share of gets served by ReadIndex instead of the log; by default the seed chooses 0, 0.5 or 1. */
  readonly readIndexProbability?: number;
  /** Overrides of the core's configuration (not id or random). */
  readonly raftConfig?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  /** Keep running after the first violation. */
  readonly continueAfterViolation?: boolean;
  /** Membership changes during the fault phase; by default the seed chooses. */
  readonly membership?: MembershipMode;
  /** Overrides of the fault menu's weights. */
  readonly faultWeights?: Partial<Record<FaultKind, number>>;
  /** Probability that a granted vote crashes its voter right after; by default the seed chooses. */
  readonly voteCrashProbability?: number;
  /** Snapshot transfers breaking off midway; by default the seed chooses. */
  readonly snapshotStream?: Partial<SnapshotStreamOptions>;
  /** Shares of clients that route each request to a random node, and that only read. */
  readonly randomRoutingProbability?: number;
  readonly readerProbability?: number;
  /** How a joining node's empty disk is bootstrapped (default 'founding', as src does; see cluster.ts). */
  readonly joinBootstrap?: JoinBootstrap;
  /** Properties not to check (to ask which other checker catches a broken core). */
  readonly ignoreProperties?: readonly string[];
  /** Runtime options only tests set (a deliberately broken runtime). */
  readonly installPartialSnapshots?: boolean;
}

export interface RunViolation {
  readonly property: string;
  readonly detail: string;
  /** Simulated milliseconds into the run. */
  readonly atMs: number;
}

export interface RunStats {
  readonly nodeCount: number;
  readonly clientCount: number;
  readonly snapshotIntervalEntries: number;
  readonly chaosMs: number;
  readonly readIndexProbability: number;
  readonly raftConfig: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  readonly simulatedMs: number;
  readonly events: number;
  readonly network: NetworkStats;
  readonly crashes: number;
  readonly restarts: number;
  readonly elections: number;
  readonly leaderTerms: number;
  readonly commitIndexMax: number;
  readonly operations: WorkloadStats;
  readonly writesAcknowledged: number;
  readonly faults: FaultCounts;
  readonly fullRestart: boolean;
  /** From the heal to the first acknowledged write proposed after it; null if it never came. */
  readonly recoveryMs: number | null;
  readonly snapshotsTaken: number;
  readonly snapshotsInstalled: number;
  readonly membershipMode: MembershipMode;
  readonly membership: MembershipStats;
  readonly cluster: ClusterStats;
  /** The voters and learners of the leader's configuration at the end (or of the founding one). */
  readonly finalMembers: string;
  /** ReadIndex: heartbeat rounds leaders started, and reads answered ok. */
  readonly readRounds: number;
  readonly readsServed: number;
  readonly readsServedOnFollower: number;
  readonly lincheck: 'linearizable' | 'violation' | 'unknown' | 'skipped';
}

export interface RunResult {
  readonly seed: number;
  readonly violations: readonly RunViolation[];
  /** Deterministic: the same seed gives the same stats. */
  readonly stats: RunStats;
  /** Wall-clock milliseconds: simulation and linearizability check. */
  readonly wallMs: { readonly simulate: number; readonly lincheck: number };
  /** The trace, when asked for. */
  readonly trace: readonly string[];
}

interface Shape {
  readonly nodeCount: number;
  readonly clientCount: number;
  readonly snapshotIntervalEntries: number;
  readonly snapshotKeepTailEntries: number;
  readonly baseline: Partial<NetworkOptions>;
  readonly fullRestart: boolean;
  readonly chaosMs: number;
  /** Share of gets served by ReadIndex rather than through the log. */
  readonly readIndexProbability: number;
  /** Batching and protocol options of the core that this seed varies (timeouts stay the defaults). */
  readonly raftConfig: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  readonly membershipMode: MembershipMode;
  readonly snapshotStream: Partial<SnapshotStreamOptions>;
  readonly voteCrashProbability: number;
  readonly randomRoutingProbability: number;
  readonly readerProbability: number;
}

/** The seed's choices of cluster size, load and baseline network quality. */
function chooseShape(rng: Rng, options: RunOptions): Shape {
  const nodeCount = options.nodeCount ?? (rng.chance(0.5) ? 3 : 5);
  const clientCount = rng.intBetween(2, 6);
  const snapshotIntervalEntries = options.snapshotIntervalEntries ?? (rng.chance(0.5) ? rng.intBetween(10, 80) : 0);
  const snapshotKeepTailEntries = rng.chance(0.5) ? 0 : rng.intBetween(1, 20);
  const lossy = rng.chance(0.5);
  const baseline: Partial<NetworkOptions> = {
    lossProbability: lossy ? 0.02 * rng.nextFloat() : 0,
    duplicateProbability: lossy ? 0.02 * rng.nextFloat() : 0,
    delaySpikeProbability: lossy ? 0.02 * rng.nextFloat() : 0,
    delaySpikeMicrosMax: ms(30),
  };
  const fullRestart = rng.chance(0.25);
  const readIndexProbability = options.readIndexProbability ?? rng.pick([0, 0.5, 1]);
  const chaosMs = options.chaosMs ?? rng.intBetween(CHAOS_MS_MIN, CHAOS_MS_MAX);
  // Tiny batches and windows make followers lag and entries of several terms travel separately,
  // which is where commit-rule and backtracking bugs show; pre-vote and check-quorum can be off.
  const raftConfig: Partial<Omit<RaftConfig, 'id' | 'random'>> = {
    ...(rng.chance(0.3) ? { maxAppendEntries: rng.intBetween(1, 3) } : {}),
    ...(rng.chance(0.3) ? { maxInflightAppends: rng.intBetween(1, 4) } : {}),
    ...(rng.chance(0.15) ? { preVote: false } : {}),
    ...(rng.chance(0.15) ? { checkQuorum: false } : {}),
    ...options.raftConfig,
  };
  // Drawn after the older choices, so those stay what they were for a given seed.
  const membershipMode = options.membership ?? rng.pick<MembershipMode>(['off', 'steady', 'steady', 'steady', 'aggressive', 'aggressive']);
  const snapshotStream: Partial<SnapshotStreamOptions> = options.snapshotStream ?? (rng.chance(0.5)
    ? { resetProbability: 0.5 * rng.nextFloat(), ackLostProbability: 0.2 * rng.nextFloat(), chunkCountMax: rng.intBetween(1, 6) }
    : {});
  const voteCrashProbability = options.voteCrashProbability ?? (rng.chance(0.2) ? 0.3 * rng.nextFloat() : 0);
  const randomRoutingProbability = options.randomRoutingProbability ?? rng.pick([0, 0.3, 1]);
  const readerProbability = options.readerProbability ?? rng.pick([0, 0, 0.3]);
  return {
    nodeCount, clientCount, snapshotIntervalEntries, snapshotKeepTailEntries, baseline, fullRestart, chaosMs, raftConfig,
    readIndexProbability, membershipMode, snapshotStream, voteCrashProbability, randomRoutingProbability, readerProbability,
  };
}

/** The fault phase lasts this long unless the options say otherwise (the seed chooses). */
export const CHAOS_MS_MIN = 5_000;
export const CHAOS_MS_MAX = 40_000;

const CALM_NETWORK: Partial<NetworkOptions> = { lossProbability: 0, duplicateProbability: 0, delaySpikeProbability: 0 };

export function runSeed(seed: number, options: RunOptions = {}): RunResult {
  const started = performance.now();
  const rng = rootRng(seed);
  const shape = chooseShape(rng.fork('shape'), options);
  const chaosMicros = ms(shape.chaosMs);
  const livenessMicros = ms(options.livenessTimeoutMs ?? 10_000);
  const runtimeOptions: Partial<RuntimeOptions> = {
    snapshotIntervalEntries: shape.snapshotIntervalEntries,
    snapshotKeepTailEntries: shape.snapshotKeepTailEntries,
    configFor: (id: NodeId, random: Rng) => ({ ...defaultRaftConfig(id, random), ...shape.raftConfig }),
    ...(options.nodeFactory !== undefined ? { nodeFactory: options.nodeFactory } : {}),
    ...(options.installPartialSnapshots === true ? { installPartialSnapshots: true } : {}),
  };
  const cluster = new Cluster({
    nodeCount: shape.nodeCount, rng, trace: options.trace ?? false, network: shape.baseline, runtime: runtimeOptions,
    snapshotStream: shape.snapshotStream, joinBootstrap: options.joinBootstrap ?? 'founding',
  });
  const { sim, checker, trace } = cluster;
  for (const property of options.ignoreProperties ?? []) checker.ignore(property);
  if (!options.continueAfterViolation) checker.onViolation = () => sim.stop();

  let elections = 0;
  const leaderTerms = new Set<number>();
  cluster.listener.coreEvent = (_id, event) => {
    if (event.type === 'electionStarted' && !event.preVote) elections++;
    if (event.type === 'becameLeader') leaderTerms.add(event.term);
  };

  const workload = new Workload(cluster, rng.fork('workload'), {
    clientCount: shape.clientCount, readIndexProbability: shape.readIndexProbability,
    randomRoutingProbability: shape.randomRoutingProbability, readerProbability: shape.readerProbability,
  });
  const faults = new FaultSchedule(cluster, rng.fork('faults'), {
    endMicros: chaosMicros,
    gapMicrosMin: ms(30),
    gapMicrosMax: ms(300),
    downtimeMicrosMin: ms(10),
    downtimeMicrosMax: ms(800),
    baseline: shape.baseline,
    voteCrashProbability: shape.voteCrashProbability,
    ...(options.faultWeights !== undefined ? { weights: options.faultWeights } : {}),
  });
  const operator = new MembershipOperator(cluster, rng.fork('membership'), { mode: shape.membershipMode, endMicros: chaosMicros });

  const stopped = (): boolean => !checker.ok && !options.continueAfterViolation;
  const run = (until: Micros): void => {
    try {
      sim.runUntil(until);
    } catch (error) {
      const text = error instanceof Error ? (error.stack ?? error.message).split('\n').slice(0, 6).join('\n') : String(error);
      checker.report('exception', text);
      sim.stop();
    }
  };

  trace.add(
    `run seed=${seed} nodes=${shape.nodeCount} clients=${shape.clientCount} chaos=${shape.chaosMs}ms ` +
      `snapshotEvery=${shape.snapshotIntervalEntries} keepTail=${shape.snapshotKeepTailEntries} readIndex=${shape.readIndexProbability} ` +
      `raft=${JSON.stringify(shape.raftConfig)} network=${JSON.stringify(shape.baseline)} membership=${shape.membershipMode} ` +
      `snapshotStream=${JSON.stringify(shape.snapshotStream)} voteCrash=${shape.voteCrashProbability.toFixed(3)}`,
  );
  cluster.startAll();
  workload.start();
  trace.add(`clients ${workload.describeClients()} (s sticky, r random routing, R reader)`);
  if (options.faults ?? true) faults.start();
  operator.start();
  run(chaosMicros);

  // Heal everything, restart every crashed node (sometimes the whole cluster), then wait for a
  // leader and a write that commits.
  const healMicros = sim.now;
  let recoveryMs: number | null = null;
  if (!stopped()) {
    cluster.network.heal();
    cluster.network.configure(CALM_NETWORK);
    const healRng = rng.fork('heal');
    if (shape.fullRestart) for (const id of cluster.upIds()) cluster.crash(id);
    for (const id of cluster.downIds()) sim.after(healRng.intBetween(0, ms(50)), () => cluster.restart(id));
    trace.add(`HEAL network healed${shape.fullRestart ? ', whole cluster crashed' : ''}; restarting ${cluster.downIds().map((id) => `n${id}`).join(',') || 'nobody'}`);
    workload.onComplete = (operation) => {
      if (recoveryMs === null && operation.status === 'ok' && operation.kind !== 'get' && operation.invokeTime * 1000 >= healMicros) {
        recoveryMs = (sim.now - healMicros) / 1000;
        trace.add(`LIVE a write proposed after the heal committed, ${recoveryMs.toFixed(3)}ms after it`);
        sim.stop();
      }
    };
    run(healMicros + livenessMicros);
    workload.onComplete = null;
    if (recoveryMs === null && !stopped()) {
      checker.report('liveness', `no write committed within ${livenessMicros / 1000}ms of the heal (${describeNodes(cluster)})`);
    }
    // Every member, voter or learner, however far behind (or restored from however old a state, or
    // joined with an empty disk), must catch up.
    const target = workload.acknowledged[workload.acknowledged.length - 1]?.index ?? 0;
    const caughtUp = (): boolean => currentMembers(cluster).every((id) => cluster.runtime(id).stateMachine.appliedIndex >= target);
    const catchUpEnd = sim.now + livenessMicros;
    while (recoveryMs !== null && !stopped() && !caughtUp() && sim.now < catchUpEnd) run(sim.now + ms(10));
    if (recoveryMs !== null && !stopped() && !caughtUp()) {
      checker.report('catchUp', `not every node applied index ${target} within ${livenessMicros / 1000}ms (${describeNodes(cluster)})`);
    }
  }

  // Let operations in flight finish, then the end-of-run checks.
  operator.stop();
  workload.stopIssuing();
  const drainEnd = sim.now + ms(1100);
  while (!stopped() && workload.inFlightCount > 0 && sim.now < drainEnd) run(sim.now + ms(5));
  workload.finish();
  if (!stopped()) checkAcknowledgedWrites(cluster, workload);
  const simulated = performance.now();

  let lincheck: RunStats['lincheck'] = 'skipped';
  if (!stopped() && (options.lincheck ?? true)) {
    try {
      const result = checkLinearizable(workload.history, { timeBudgetMs: options.lincheckBudgetMs ?? 2000 });
      lincheck = result.verdict;
      if (result.verdict === 'violation') {
        checker.report('linearizability', `key ${JSON.stringify(result.key)}: ${result.explanation}`);
      }
      trace.add(`LINCHECK ${result.verdict}${result.verdict === 'unknown' ? `: ${result.reason}` : ''}`);
    } catch (error) {
      // A malformed history is the simulator's bug, not the core's: say so plainly.
      checker.report('historyInvalid', error instanceof Error ? error.message : String(error));
    }
  }
  const finished = performance.now();

  let commitIndexMax = 0;
  let snapshotsTaken = 0;
  let snapshotsInstalled = 0;
  let readRounds = 0;
  let readsServed = 0;
  let readsServedOnFollower = 0;
  for (const runtime of cluster.all) {
    commitIndexMax = Math.max(commitIndexMax, runtime.node?.commitIndex ?? runtime.disk.durable.hardState.commitIndex);
    snapshotsTaken += runtime.stats.snapshotsTaken;
    snapshotsInstalled += runtime.stats.snapshotsInstalled;
    readRounds += runtime.stats.readRounds;
    readsServed += runtime.stats.readsServed;
    readsServedOnFollower += runtime.stats.readsServedOnFollower;
  }
  const finalLeader = cluster.leader()?.node ?? null;
  const finalMembership = finalLeader?.membership ?? cluster.membership;
  return {
    seed,
    violations: checker.violations.map((v) => ({ property: v.property, detail: v.detail, atMs: v.time / 1000 })),
    stats: {
      nodeCount: shape.nodeCount,
      clientCount: shape.clientCount,
      snapshotIntervalEntries: shape.snapshotIntervalEntries,
      chaosMs: shape.chaosMs,
      readIndexProbability: shape.readIndexProbability,
      raftConfig: shape.raftConfig,
      simulatedMs: sim.now / 1000,
      events: sim.eventCount,
      network: { ...cluster.network.stats },
      crashes: cluster.stats.crashes,
      restarts: cluster.stats.restarts,
      elections,
      leaderTerms: leaderTerms.size,
      commitIndexMax,
      operations: { ...workload.stats },
      writesAcknowledged: workload.acknowledged.length,
      faults: { ...faults.counts },
      fullRestart: shape.fullRestart,
      recoveryMs,
      snapshotsTaken,
      snapshotsInstalled,
      membershipMode: shape.membershipMode,
      membership: { ...operator.stats },
      cluster: { ...cluster.stats },
      finalMembers: [...finalMembership.members].sort((a, b) => a.id - b.id).map((m) => `${m.id}${m.role === 'learner' ? 'L' : ''}`).join(','),
      readRounds,
      readsServed,
      readsServedOnFollower,
      lincheck,
    },
    wallMs: { simulate: simulated - started, lincheck: finished - simulated },
    trace: trace.lines,
  };
}

/** The members of the leader's latest configuration that still exist (all existing nodes when no
 * node leads). */
function currentMembers(cluster: Cluster): NodeId[] {
  const leader = cluster.leader()?.node ?? null;
  if (leader === null) return [...cluster.nodeIds];
  return memberIds(leader.membership).filter((id) => cluster.has(id) && !cluster.isRetired(id));
}

function describeNodes(cluster: Cluster): string {
  return cluster.nodeIds
    .map((id) => cluster.runtime(id))
    .map((r) => (r.node === null ? `n${r.id}:down` : `n${r.id}:${r.node.role}@${r.node.term} commit=${r.node.commitIndex} applied=${r.stateMachine.appliedIndex}`))
    .join(' ');
}

/** Every acknowledged write must be in the log of the node with the highest commit index. */
function checkAcknowledgedWrites(cluster: Cluster, workload: Workload): void {
  let best: { id: NodeId; commit: number } | undefined;
  for (const runtime of cluster.all) {
    const node = runtime.node;
    if (node === null) continue;
    if (best === undefined || node.commitIndex > best.commit) best = { id: runtime.id, commit: node.commitIndex };
  }
  if (best === undefined) return;
  const id = best.id;
  cluster.checker.checkAcknowledged(workload.acknowledged, (index, term) => cluster.holds(id, index, term), best.commit);
}

export type { SimOperation };
