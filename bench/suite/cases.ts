// The throughput and latency cases: every workload x value size x client count, on each system,
// alternating the two systems case by case (and which goes first from case to case and run to run),
// every case on a freshly started cluster that is stopped before the other system starts.

import { remainingMs, systemsToRun, type SuiteContext } from './context.js';
import { cpuMsOf, runLoad } from './loadgen.js';
import type { Workload } from './loadgen-protocol.js';
import type { SystemName } from './options.js';
import { monotonicMs } from './processes.js';
import { median, type LatencySummary } from './stats.js';
import type { MemberMemory } from './system.js';

/** Start, stop, load generator start-up and memory reading, per case, roughly. */
const CASE_OVERHEAD_MS = 4000;

export interface CaseKey {
  readonly workload: Exclude<Workload, 'fill'>;
  readonly valueBytes: number;
  readonly clients: number;
}

export interface CaseRecord extends CaseKey {
  readonly run: number;
  readonly system: SystemName;
  readonly label: string;
  readonly opsPerSecond: number;
  readonly ok: number;
  readonly latencyMs: LatencySummary;
  readonly errors: Record<string, number>;
  readonly errorCount: number;
  readonly errorSamples: readonly string[];
  readonly loadgenCpuCores: number;
  /** CPU all three members used in the window, in cores. */
  readonly clusterCpuCores: number;
  readonly memory: readonly MemberMemory[];
  readonly leaderId: number;
  readonly leaderChanged: boolean;
  readonly clusterStartMs: number;
  readonly fillMs: number | null;
}

export interface CaseFailure extends CaseKey {
  readonly run: number;
  readonly system: SystemName;
  readonly failure: string;
}

export interface CaseMedian extends CaseKey {
  readonly system: SystemName;
  readonly label: string;
  readonly runs: number;
  readonly opsPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly errorCount: number;
  readonly loadgenCpuCores: number;
  readonly clusterCpuCores: number;
  /** Highest VmHWM of the leader / of a follower over the runs, bytes. */
  readonly leaderPeakRssBytes: number;
  readonly followerPeakRssBytes: number;
  /** The leader's anonymous resident memory after the case (RSS less mapped files), highest over runs. */
  readonly leaderAnonRssBytes: number;
  /** Ours: the leader's highest sampled JS heap; etcd: its Go heap in use after the case. */
  readonly leaderHeapBytes: number;
  readonly leaderChanges: number;
}

export function caseName(key: CaseKey): string {
  const value = key.valueBytes >= 1024 && key.valueBytes % 1024 === 0 ? `${key.valueBytes / 1024} KiB` : `${key.valueBytes} B`;
  const workload = { write: '100% writes', read: '100% linearizable reads', stale: '100% stale reads', mixed: '50/50 writes and reads' }[key.workload];
  return `${workload}, ${value}, ${key.clients} client${key.clients === 1 ? '' : 's'}`;
}

export function caseKeys(context: SuiteContext): CaseKey[] {
  const keys: CaseKey[] = [];
  for (const valueBytes of context.options.valueSizes) {
    for (const workload of context.options.workloads) {
      for (const clients of context.options.clientCounts) keys.push({ workload, valueBytes, clients });
    }
  }
  return keys;
}

export async function runCases(context: SuiteContext, onRecord: (record: CaseRecord | CaseFailure) => void): Promise<(CaseRecord | CaseFailure)[]> {
  const { options } = context;
  const keys = caseKeys(context);
  const systems = systemsToRun(context);
  const records: (CaseRecord | CaseFailure)[] = [];
  const total = keys.length * options.runs * systems.length;
  let done = 0;
  for (let run = 1; run <= options.runs; run++) {
    for (const [index, key] of keys.entries()) {
      const order = (index + run) % 2 === 1 ? systems : [...systems].reverse();
      for (const system of order) {
        done += 1;
        const label = `cases ${done}/${total} (run ${run}/${options.runs}): ${caseName(key)} - ${system}`;
        if (remainingMs(context) < options.warmupMs + options.durationMs + CASE_OVERHEAD_MS) {
          context.skipped.push(`${caseName(key)} on ${system}, run ${run}: time limit`);
          continue;
        }
        context.progress.set(label);
        let record: CaseRecord | CaseFailure;
        try {
          record = await runOneCase(context, system, key, run);
        } catch (error) {
          record = { ...key, run, system, failure: (error as Error).message };
          context.warnings.push(`${caseName(key)} on ${system}, run ${run} failed: ${(error as Error).message.split('\n')[0]}`);
        }
        records.push(record);
        onRecord(record);
      }
    }
  }
  return records;
}

async function runOneCase(context: SuiteContext, system: SystemName, key: CaseKey, run: number): Promise<CaseRecord> {
  const { options } = context;
  return context.clusters.with(system, key.valueBytes, async ({ system: cluster, leader, startMs, fillMs }) => {
    let cpuAtStart = NaN;
    let cpuAtEnd = NaN;
    const timers: NodeJS.Timeout[] = [];
    const result = await runLoad({
      system: cluster.kind, endpoints: [leader.apiPort], workload: key.workload, valueBytes: key.valueBytes, keyCount: options.keyCount,
      clients: key.clients, warmupMs: options.warmupMs, durationMs: options.durationMs, processes: options.loadProcesses, seed: run,
      onStart: (startAtMs) => {
        const windowStartMs = startAtMs + options.warmupMs;
        timers.push(setTimeout(() => { cpuAtStart = cpuMsOf(cluster.pids()); }, Math.max(0, windowStartMs - monotonicMs())));
        timers.push(setTimeout(() => { cpuAtEnd = cpuMsOf(cluster.pids()); }, Math.max(0, windowStartMs + options.durationMs - monotonicMs())));
      },
    });
    for (const timer of timers) clearTimeout(timer);
    // The last workers can answer just before the end timer fires: read it now then.
    if (!Number.isFinite(cpuAtEnd)) cpuAtEnd = cpuMsOf(cluster.pids());
    const memory = await cluster.memory(leader.id);
    const leaderAfter = await cluster.leader(3000).catch(() => null);
    return {
      ...key, run, system, label: cluster.label,
      opsPerSecond: result.opsPerSecond, ok: result.ok, latencyMs: result.latencyMs, errors: result.errors, errorCount: result.errorCount, errorSamples: result.errorSamples,
      loadgenCpuCores: result.loadgenCpuCores, clusterCpuCores: (cpuAtEnd - cpuAtStart) / options.durationMs,
      memory, leaderId: leader.id, leaderChanged: leaderAfter === null || leaderAfter.id !== leader.id, clusterStartMs: startMs, fillMs,
    };
  });
}

export function isFailure(record: CaseRecord | CaseFailure): record is CaseFailure {
  return 'failure' in record;
}

export function caseMedians(records: readonly (CaseRecord | CaseFailure)[]): CaseMedian[] {
  const groups = new Map<string, CaseRecord[]>();
  for (const record of records) {
    if (isFailure(record)) continue;
    const id = `${record.valueBytes}|${record.workload}|${record.clients}|${record.system}`;
    const group = groups.get(id) ?? [];
    group.push(record);
    groups.set(id, group);
  }
  const maxOf = (values: number[]): number => (values.filter(Number.isFinite).length === 0 ? NaN : Math.max(...values.filter(Number.isFinite)));
  return [...groups.values()].map((group) => {
    const first = group[0];
    const pick = (field: keyof LatencySummary): number => median(group.map((r) => r.latencyMs[field]));
    return {
      workload: first.workload, valueBytes: first.valueBytes, clients: first.clients, system: first.system, label: first.label, runs: group.length,
      opsPerSecond: median(group.map((r) => r.opsPerSecond)),
      latencyMs: { p50: pick('p50'), p99: pick('p99'), p999: pick('p999'), max: pick('max'), mean: pick('mean') },
      errorCount: group.reduce((sum, r) => sum + r.errorCount, 0),
      loadgenCpuCores: median(group.map((r) => r.loadgenCpuCores)),
      clusterCpuCores: median(group.map((r) => r.clusterCpuCores)),
      leaderPeakRssBytes: maxOf(group.flatMap((r) => r.memory.filter((m) => m.role === 'leader').map((m) => m.peakRssBytes))),
      leaderAnonRssBytes: maxOf(group.flatMap((r) => r.memory.filter((m) => m.role === 'leader').map((m) => m.rssAnonBytes))),
      followerPeakRssBytes: maxOf(group.flatMap((r) => r.memory.filter((m) => m.role !== 'leader').map((m) => m.peakRssBytes))),
      leaderHeapBytes: maxOf(group.flatMap((r) => r.memory.filter((m) => m.role === 'leader').map((m) => (Number.isFinite(m.heapPeakBytes) ? m.heapPeakBytes : m.heapUsedBytes)))),
      leaderChanges: group.filter((r) => r.leaderChanged).length,
    };
  });
}
