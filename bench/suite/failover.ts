// Failover as a client sees it: steady writes from closed-loop clients to the leader, then SIGKILL
// of the leader (by its PID); clients whose request fails, or takes longer than the failover request
// timeout, move on to the next member (a follower forwards writes to whoever leads). Measured from the
// acknowledgement times of every write:
//   - kill to the first write acknowledged after the kill by a member other than the old leader (the
//     old leader can still answer in the moment between the signal and its death; a write answered by
//     a survivor was committed by the new leader);
//   - the longest gap between two consecutive acknowledged writes over the whole run;
// and, independent of any client's retry policy, kill to the first moment a survivor says it leads
// (polled every 10 ms: our /health, etcd's /v3/maintenance/status).
// The timeout matters: a write a follower forwarded to the dead leader is lost, and the follower may
// hold the request until its own deadline (etcd: about 5 s) unless the client gives up sooner.
// Each repetition runs on a freshly started cluster (systems alternated, never at the same time) with
// the product's default timeouts; etcd with the same 50 ms / 300 ms unless asked for its own.

import { remainingMs, systemsToRun, type SuiteContext } from './context.js';
import { runLoad } from './loadgen.js';
import type { SystemName } from './options.js';
import { monotonicMs, sleep } from './processes.js';
import type { Member, SystemUnderTest } from './system.js';
import { median } from './stats.js';

/** Start and stop of the cluster and the load generator, roughly. */
const REPETITION_OVERHEAD_MS = 4000;

export interface FailoverRecord {
  readonly repetition: number;
  readonly system: SystemName;
  readonly label: string;
  readonly killedLeaderId: number;
  readonly newLeaderId: number | null;
  /** Kill to the first poll at which a survivor said it leads; null if none did in the run. */
  readonly killToLeaderMs: number | null;
  readonly requestTimeoutMs: number;
  /** Kill to the first acknowledged write; null when none came within the observed time. */
  readonly killToFirstAckMs: number | null;
  readonly longestAckGapMs: number;
  readonly acksBeforeKill: number;
  readonly acksAfterKill: number;
  readonly errors: Record<string, number>;
  readonly observedAfterKillMs: number;
}

export interface FailoverSummary {
  readonly system: SystemName;
  readonly label: string;
  readonly repetitions: number;
  readonly killToFirstAckMsMedian: number;
  readonly killToFirstAckMsMax: number;
  readonly longestAckGapMsMedian: number;
  readonly longestAckGapMsMax: number;
  readonly killToLeaderMsMedian: number;
  readonly killToLeaderMsMax: number;
  /** Repetitions with no acknowledged write after the kill within the observed time. */
  readonly noAckAfterKill: number;
}

export async function runFailover(context: SuiteContext, onRecord: (record: FailoverRecord) => void): Promise<FailoverRecord[]> {
  const { options } = context;
  const systems = systemsToRun(context);
  const valueBytes = options.valueSizes.includes(100) ? 100 : options.valueSizes[0];
  const records: FailoverRecord[] = [];
  for (let repetition = 1; repetition <= options.failoverRepetitions; repetition++) {
    const order = repetition % 2 === 1 ? systems : [...systems].reverse();
    for (const system of order) {
      if (remainingMs(context) < options.failoverSteadyMs + options.failoverAfterKillMs + REPETITION_OVERHEAD_MS) {
        context.skipped.push(`failover ${repetition} on ${system}: time limit`);
        continue;
      }
      context.progress.set(`failover ${repetition}/${options.failoverRepetitions}: ${system}, ${options.failoverClients} clients writing, SIGKILL of the leader after ${options.failoverSteadyMs / 1000} s`);
      try {
        const record = await oneFailover(context, system, valueBytes, repetition);
        records.push(record);
        onRecord(record);
      } catch (error) {
        context.warnings.push(`failover ${repetition} on ${system} failed: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  }
  return records;
}

async function oneFailover(context: SuiteContext, system: SystemName, valueBytes: number, repetition: number): Promise<FailoverRecord> {
  const { options } = context;
  return context.clusters.with(system, valueBytes, async ({ system: cluster, leader }) => {
    const others = cluster.members().filter((m) => m.id !== leader.id);
    let killMs = NaN;
    let killing: Promise<void> = Promise.resolve();
    let killTimer: NodeJS.Timeout | undefined;
    let watching: Promise<number | null> = Promise.resolve(null);
    const endOfRunMs = (): number => monotonicMs() + options.failoverAfterKillMs;
    const result = await runLoad({
      system: cluster.kind, endpoints: [leader.apiPort, ...others.map((m) => m.apiPort)], workload: 'write', valueBytes, keyCount: options.keyCount,
      clients: options.failoverClients, warmupMs: 0, durationMs: options.failoverSteadyMs + options.failoverAfterKillMs, processes: options.loadProcesses,
      recordAcks: true, rotateOnError: true, seed: repetition, requestTimeoutMs: options.failoverRequestTimeoutMs,
      onStart: (startAtMs) => {
        killTimer = setTimeout(() => {
          killMs = monotonicMs();
          killing = cluster.killMember(leader.id, 'SIGKILL');
          watching = firstNewLeaderMs(cluster, others, endOfRunMs());
        }, Math.max(0, startAtMs + options.failoverSteadyMs - monotonicMs()));
      },
    });
    clearTimeout(killTimer);
    await killing;
    const leaderSeenMs = await watching;
    if (!Number.isFinite(killMs)) throw new Error('the leader was not killed');
    const acks = result.acksMs;
    const firstAfter = result.acksElsewhereMs.find((ackMs) => ackMs > killMs) ?? null;
    let before = 0;
    let longestGapMs = 0;
    for (let i = 0; i < acks.length; i++) {
      if (acks[i] <= killMs) before += 1;
      if (i > 0) longestGapMs = Math.max(longestGapMs, acks[i] - acks[i - 1]);
    }
    const endMs = result.startAtMs + options.failoverSteadyMs + options.failoverAfterKillMs;
    // No acknowledgement at all after the kill: the gap lasts at least to the end of the run.
    if (firstAfter === null && acks.length > 0) longestGapMs = Math.max(longestGapMs, endMs - acks[acks.length - 1]);
    const newLeader = await cluster.leader(5000).catch(() => null);
    return {
      repetition, system, label: cluster.label, killedLeaderId: leader.id, newLeaderId: newLeader?.id ?? null,
      killToLeaderMs: leaderSeenMs === null ? null : leaderSeenMs - killMs, requestTimeoutMs: options.failoverRequestTimeoutMs,
      killToFirstAckMs: firstAfter === null ? null : firstAfter - killMs, longestAckGapMs: longestGapMs,
      acksBeforeKill: before, acksAfterKill: acks.length - before, errors: result.errors, observedAfterKillMs: endMs - killMs,
    };
  });
}

/** Polls the survivors every 10 ms until one says it leads; the time it did, or null by `untilMs`. */
async function firstNewLeaderMs(cluster: SystemUnderTest, survivors: readonly Member[], untilMs: number): Promise<number | null> {
  while (monotonicMs() < untilMs) {
    const polledAtMs = monotonicMs();
    const answers = await Promise.all(survivors.map((member) => cluster.leads(member).catch(() => false)));
    if (answers.some((leads) => leads)) return polledAtMs;
    await sleep(10);
  }
  return null;
}

export function failoverSummaries(records: readonly FailoverRecord[]): FailoverSummary[] {
  const bySystem = new Map<SystemName, FailoverRecord[]>();
  for (const record of records) bySystem.set(record.system, [...(bySystem.get(record.system) ?? []), record]);
  return [...bySystem.entries()].map(([system, group]) => {
    // A repetition without an acknowledgement after the kill counts as its whole observed span.
    const firstAck = group.map((r) => r.killToFirstAckMs ?? r.observedAfterKillMs);
    const gaps = group.map((r) => r.longestAckGapMs);
    return {
      system, label: group[0].label, repetitions: group.length,
      killToFirstAckMsMedian: median(firstAck), killToFirstAckMsMax: Math.max(...firstAck),
      longestAckGapMsMedian: median(gaps), longestAckGapMsMax: Math.max(...gaps),
      killToLeaderMsMedian: median(group.map((r) => r.killToLeaderMs ?? r.observedAfterKillMs)),
      killToLeaderMsMax: Math.max(...group.map((r) => r.killToLeaderMs ?? r.observedAfterKillMs)),
      noAckAfterKill: group.filter((r) => r.killToFirstAckMs === null).length,
    };
  });
}
