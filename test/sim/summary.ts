// What a worker sends back for each seed, and the totals the CLI prints.

import type { RunOptions, RunResult, RunViolation } from './run.js';

/** The options a worker can receive (plain data: functions do not cross threads). */
export type WorkerOptions = Pick<
  RunOptions, 'chaosMs' | 'nodeCount' | 'lincheck' | 'livenessTimeoutMs' | 'snapshotIntervalEntries' | 'membership' | 'joinBootstrap'
>;

export interface SeedRequest {
  readonly seeds: readonly number[];
}

export interface SeedSummary {
  readonly seed: number;
  readonly violations: readonly RunViolation[];
  readonly simulatedMs: number;
  readonly events: number;
  readonly operationsOk: number;
  readonly operationsUnknown: number;
  readonly operationsFail: number;
  readonly elections: number;
  readonly crashes: number;
  readonly snapshotsInstalled: number;
  readonly lincheckUnknown: boolean;
  readonly recoveryMs: number | null;
  readonly wallMs: number;
  readonly membershipChanges: number;
  readonly nodesAdded: number;
  readonly nodesRetired: number;
  readonly leaderRemovals: number;
  readonly snapshotStreams: number;
  readonly snapshotStreamsBrokenOff: number;
  readonly readRounds: number;
  readonly readsServed: number;
  readonly readsServedOnFollower: number;
  readonly transfers: number;
  readonly compactions: number;
}

export function summarize(result: RunResult | { readonly seed: number; readonly crashed: string }): SeedSummary {
  if ('crashed' in result) {
    return {
      seed: result.seed, violations: [{ property: 'simulatorError', detail: result.crashed, atMs: 0 }],
      simulatedMs: 0, events: 0, operationsOk: 0, operationsUnknown: 0, operationsFail: 0, elections: 0, crashes: 0,
      snapshotsInstalled: 0, lincheckUnknown: false, recoveryMs: null, wallMs: 0, membershipChanges: 0, nodesAdded: 0,
      nodesRetired: 0, leaderRemovals: 0, snapshotStreams: 0, snapshotStreamsBrokenOff: 0, readRounds: 0, readsServed: 0,
      readsServedOnFollower: 0, transfers: 0, compactions: 0,
    };
  }
  const stats = result.stats;
  return {
    seed: result.seed,
    violations: result.violations,
    simulatedMs: stats.simulatedMs,
    events: stats.events,
    operationsOk: stats.operations.ok,
    operationsUnknown: stats.operations.unknown,
    operationsFail: stats.operations.fail,
    elections: stats.elections,
    crashes: stats.crashes,
    snapshotsInstalled: stats.snapshotsInstalled,
    lincheckUnknown: stats.lincheck === 'unknown',
    recoveryMs: stats.recoveryMs,
    wallMs: result.wallMs.simulate + result.wallMs.lincheck,
    membershipChanges: stats.membership.accepted,
    nodesAdded: stats.cluster.nodesAdded,
    nodesRetired: stats.cluster.nodesRetired,
    leaderRemovals: stats.membership.leaderRemovals,
    snapshotStreams: stats.cluster.snapshotStreams,
    snapshotStreamsBrokenOff: stats.cluster.snapshotStreamsBrokenOff,
    readRounds: stats.readRounds,
    readsServed: stats.readsServed,
    readsServedOnFollower: stats.readsServedOnFollower,
    transfers: stats.faults.transfer ?? 0,
    compactions: stats.faults.compact ?? 0,
  };
}

export class Totals {
  seeds = 0;
  seedsWithViolations = 0;
  simulatedMs = 0;
  events = 0;
  operationsOk = 0;
  operationsUnknown = 0;
  operationsFail = 0;
  elections = 0;
  crashes = 0;
  snapshotsInstalled = 0;
  lincheckUnknown = 0;
  wallMsMax = 0;
  wallMsMaxSeed = 0;
  membershipChanges = 0;
  nodesAdded = 0;
  nodesRetired = 0;
  leaderRemovals = 0;
  snapshotStreams = 0;
  snapshotStreamsBrokenOff = 0;
  readRounds = 0;
  readsServed = 0;
  readsServedOnFollower = 0;
  transfers = 0;
  compactions = 0;
  private readonly recoveries: number[] = [];

  add(summary: SeedSummary): void {
    this.seeds++;
    if (summary.violations.length > 0) this.seedsWithViolations++;
    this.simulatedMs += summary.simulatedMs;
    this.events += summary.events;
    this.operationsOk += summary.operationsOk;
    this.operationsUnknown += summary.operationsUnknown;
    this.operationsFail += summary.operationsFail;
    this.elections += summary.elections;
    this.crashes += summary.crashes;
    this.snapshotsInstalled += summary.snapshotsInstalled;
    if (summary.lincheckUnknown) this.lincheckUnknown++;
    if (summary.recoveryMs !== null) this.recoveries.push(summary.recoveryMs);
    this.membershipChanges += summary.membershipChanges;
    this.nodesAdded += summary.nodesAdded;
    this.nodesRetired += summary.nodesRetired;
    this.leaderRemovals += summary.leaderRemovals;
    this.snapshotStreams += summary.snapshotStreams;
    this.snapshotStreamsBrokenOff += summary.snapshotStreamsBrokenOff;
    this.readRounds += summary.readRounds;
    this.readsServed += summary.readsServed;
    this.readsServedOnFollower += summary.readsServedOnFollower;
    this.transfers += summary.transfers;
    this.compactions += summary.compactions;
    if (summary.wallMs > this.wallMsMax) {
      this.wallMsMax = summary.wallMs;
      this.wallMsMaxSeed = summary.seed;
    }
  }

  /** Median and maximum of the heal-to-first-write times. */
  recovery(): { medianMs: number; maxMs: number } {
    const sorted = [...this.recoveries].sort((a, b) => a - b);
    return { medianMs: sorted[sorted.length >> 1] ?? NaN, maxMs: sorted[sorted.length - 1] ?? NaN };
  }
}
