// Turns the suite's results into a readable table (terminal) and a Markdown report (results file and
// bench/BASELINE.md). Raw figures go to JSON unchanged; this only formats.

import type { CaseFailure, CaseMedian, CaseRecord } from './cases.js';
import { caseName, isFailure } from './cases.js';
import type { FailoverRecord, FailoverSummary } from './failover.js';
import type { HeadroomRecord } from './headroom.js';
import type { MachineInfo } from './machine.js';
import type { SuiteOptions } from './options.js';
import type { ProfileOutcome } from './profile.js';
import type { RestartOutcome, ServeTiming } from './restart.js';
import type { MemberMemory } from './system.js';

export interface SuiteResults {
  readonly kind: 'raft-kv-bench';
  readonly version: 1;
  readonly mode: 'quick' | 'full';
  readonly note: string;
  readonly startedAt: string;
  finishedAt: string;
  elapsedMs: number;
  readonly options: Record<string, unknown>;
  readonly machine: MachineInfo;
  headroom: HeadroomRecord[];
  cases: (CaseRecord | CaseFailure)[];
  medians: CaseMedian[];
  failover: FailoverRecord[];
  failoverSummary: FailoverSummary[];
  restart: RestartOutcome | { readonly skipped: string };
  profile: ProfileOutcome | { readonly skipped: string };
  readonly warnings: string[];
  readonly skipped: string[];
}

// ---- number formats ------------------------------------------------------------------------------

export function ops(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-';
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return Math.round(value).toLocaleString('en-US');
}

function mib(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(0) : '-';
}

function cores(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : '-';
}

function ratio(ours: number, theirs: number): string {
  return Number.isFinite(ours) && Number.isFinite(theirs) && theirs > 0 ? `${(ours / theirs).toFixed(2)}x` : '-';
}

// ---- the case table --------------------------------------------------------------------------------

interface Row {
  readonly caseLabel: string;
  readonly system: string;
  readonly cells: readonly string[];
  readonly isRatio: boolean;
}

const CASE_COLUMNS = ['ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'LG cores', 'cluster cores', 'leader peak RSS MiB', 'leader anon RSS MiB', 'leader heap MiB'];

function caseRows(medians: readonly CaseMedian[], options: SuiteOptions): Row[] {
  const rows: Row[] = [];
  const seen = new Set<string>();
  for (const valueBytes of options.valueSizes) {
    for (const workload of options.workloads) {
      for (const clients of options.clientCounts) {
        const key = { workload, valueBytes, clients };
        const id = `${valueBytes}|${workload}|${clients}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const ours = medians.find((m) => m.system === 'ours' && m.workload === workload && m.valueBytes === valueBytes && m.clients === clients);
        const etcd = medians.find((m) => m.system === 'etcd' && m.workload === workload && m.valueBytes === valueBytes && m.clients === clients);
        if (ours === undefined && etcd === undefined) continue;
        let label = caseName(key);
        for (const median of [ours, etcd]) {
          if (median === undefined) continue;
          rows.push({
            caseLabel: label, system: median.label, isRatio: false,
            cells: [
              ops(median.opsPerSecond), ms(median.latencyMs.p50), ms(median.latencyMs.p99), ms(median.latencyMs.p999), ms(median.latencyMs.max),
              String(median.errorCount) + (median.leaderChanges > 0 ? ` (${median.leaderChanges} leader change${median.leaderChanges === 1 ? '' : 's'})` : ''),
              cores(median.loadgenCpuCores), cores(median.clusterCpuCores), mib(median.leaderPeakRssBytes), mib(median.leaderAnonRssBytes), mib(median.leaderHeapBytes),
            ],
          });
          label = '';
        }
        if (ours !== undefined && etcd !== undefined) {
          rows.push({
            caseLabel: '', system: 'ours / etcd', isRatio: true,
            cells: [
              ratio(ours.opsPerSecond, etcd.opsPerSecond), ratio(ours.latencyMs.p50, etcd.latencyMs.p50), ratio(ours.latencyMs.p99, etcd.latencyMs.p99),
              ratio(ours.latencyMs.p999, etcd.latencyMs.p999), ratio(ours.latencyMs.max, etcd.latencyMs.max), '', '', '', ratio(ours.leaderPeakRssBytes, etcd.leaderPeakRssBytes), ratio(ours.leaderAnonRssBytes, etcd.leaderAnonRssBytes), ratio(ours.leaderHeapBytes, etcd.leaderHeapBytes),
            ],
          });
        }
      }
    }
  }
  return rows;
}

function textTable(header: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function markdownTable(header: readonly string[], body: readonly (readonly string[])[]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
    ...body.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ].join('\n');
}

export function caseTableText(medians: readonly CaseMedian[], options: SuiteOptions): string {
  return textTable(['case', 'system', ...CASE_COLUMNS], caseRows(medians, options).map((row) => [row.caseLabel, row.system, ...row.cells]));
}

/** One finished case, for the live output. */
export function caseLine(record: CaseRecord | CaseFailure): string {
  if (isFailure(record)) return `  ${caseName(record)} - ${record.system} run ${record.run}: FAILED: ${record.failure.split('\n')[0]}`;
  const leader = record.memory.find((m) => m.role === 'leader');
  return `  ${caseName(record)} - ${record.label} run ${record.run}: ${ops(record.opsPerSecond)} ops/s, p50 ${ms(record.latencyMs.p50)} p99 ${ms(record.latencyMs.p99)} `
    + `p99.9 ${ms(record.latencyMs.p999)} max ${ms(record.latencyMs.max)} ms, ${record.errorCount} errors${record.leaderChanged ? ', LEADER CHANGED' : ''}, `
    + `load generator ${cores(record.loadgenCpuCores)} cores, cluster ${cores(record.clusterCpuCores)} cores, leader peak RSS ${leader === undefined ? '-' : mib(leader.peakRssBytes)} MiB`;
}

// ---- the other sections ------------------------------------------------------------------------------

function headroomLines(results: SuiteResults): { header: string[]; body: string[][]; summary: string } {
  const body = results.headroom.map((h) => [`${h.workload === 'write' ? 'PUT' : 'GET'}, ${h.valueBytes} B, ${h.clients} clients`, ops(h.opsPerSecond), ms(h.latencyMs.p50), ms(h.latencyMs.p99), cores(h.loadgenCpuCores), h.loadgenCpuMicrosPerOp.toFixed(1), String(h.errorCount)]);
  const best = results.medians.reduce<CaseMedian | null>((top, m) => (top === null || m.opsPerSecond > top.opsPerSecond ? m : top), null);
  const headroomBest = results.headroom.reduce((top, h) => Math.max(top, h.opsPerSecond), 0);
  const hottest = results.cases.filter((c): c is CaseRecord => !isFailure(c)).reduce<CaseRecord | null>((top, c) => (top === null || c.loadgenCpuCores > top.loadgenCpuCores ? c : top), null);
  const loadProcesses = Number(results.options.loadProcesses ?? 1);
  let summary = 'No case ran, so there is nothing to compare the headroom with.';
  if (best !== null && headroomBest > 0) {
    summary = `Against the do-nothing server the load generator drove ${ops(headroomBest)} ops/s; the most any system took in this run was ${ops(best.opsPerSecond)} ops/s `
      + `(${best.label}, ${caseName(best)}): ${(headroomBest / best.opsPerSecond).toFixed(1)}x headroom.`;
    summary += ' (The do-nothing server is one Node process too, so this is a floor of what the generator can drive.)';
  }
  const measured = results.cases.filter((c): c is CaseRecord => !isFailure(c) && c.opsPerSecond > 0 && Number.isFinite(c.loadgenCpuCores));
  if (hottest !== null && measured.length > 0) {
    // At low rates the generator's fixed costs (timers, the event loop) dominate its CPU per request;
    // the fastest case shows its cost per request under load.
    const fastest = measured.reduce((top, c) => (c.opsPerSecond > top.opsPerSecond ? c : top));
    const microsPerOp = (fastest.loadgenCpuCores * 1e6) / fastest.opsPerSecond;
    summary += ` In the fastest case (${caseName(fastest)}, ${fastest.label}, ${ops(fastest.opsPerSecond)} ops/s) the generator spent ${microsPerOp.toFixed(0)} µs of CPU per request, `
      + `so ${loadProcesses} process${loadProcesses === 1 ? '' : 'es'} could issue about ${ops((loadProcesses * 1e6) / microsPerOp)} requests/s with ${loadProcesses === 1 ? 'a core' : 'a core each'}; the busiest case kept it ${(100 * hottest.loadgenCpuCores / loadProcesses).toFixed(0)}% busy `
      + `(${caseName(hottest)}, ${hottest.label}): it was never saturated itself (on 2 shared cores it still takes CPU the cluster could use: see LG cores).`;
    if (hottest.loadgenCpuCores > 0.85 * loadProcesses) summary += ' WARNING: that is near the limit of the load generator: run again with more --load-processes.';
  }
  return { header: ['target: do-nothing node:http server', 'ops/s', 'p50 ms', 'p99 ms', 'LG cores', 'LG CPU µs/op', 'errors'], body, summary };
}

function failoverBody(results: SuiteResults): { header: string[]; body: string[][]; summaryHeader: string[]; summaryBody: string[][] } {
  const body = results.failover.map((f) => [
    String(f.repetition), f.label, String(f.killedLeaderId), f.newLeaderId === null ? '-' : String(f.newLeaderId),
    f.killToLeaderMs === null ? `> ${ms(f.observedAfterKillMs)}` : ms(f.killToLeaderMs),
    f.killToFirstAckMs === null ? `> ${ms(f.observedAfterKillMs)}` : ms(f.killToFirstAckMs), ms(f.longestAckGapMs), String(f.acksBeforeKill), String(f.acksAfterKill),
    Object.entries(f.errors).map(([kind, count]) => `${count} ${kind}`).join('; ') || '0',
  ]);
  const summaryBody = results.failoverSummary.map((s) => [
    s.label, String(s.repetitions), ms(s.killToLeaderMsMedian), ms(s.killToLeaderMsMax), ms(s.killToFirstAckMsMedian), ms(s.killToFirstAckMsMax), ms(s.longestAckGapMsMedian), ms(s.longestAckGapMsMax), String(s.noAckAfterKill),
  ]);
  return {
    header: ['rep', 'system', 'killed', 'new leader', 'kill -> leader seen ms', 'kill -> first ack ms', 'longest ack gap ms', 'acks before', 'acks after', 'errors seen by clients'],
    body,
    summaryHeader: ['system', 'reps', 'kill -> new leader seen, median ms', 'max ms', 'kill -> first ack, median ms', 'max ms', 'longest ack gap, median ms', 'max ms', 'reps with no ack after the kill'],
    summaryBody,
  };
}

function memoryCell(memory: readonly MemberMemory[]): string {
  return memory.map((m) => `node ${m.id} (${m.role}): peak RSS ${mib(m.peakRssBytes)} MiB, RSS ${mib(m.rssBytes)} MiB (anon ${mib(m.rssAnonBytes)}, mapped files ${mib(m.rssFileBytes)}), JS heap ${mib(m.heapUsedBytes)} MiB (peak ${mib(m.heapPeakBytes)})`).join('; ');
}

function timingCell(timing: ServeTiming): string {
  const healthy = Object.entries(timing.healthyMsByNode).map(([id, value]) => `node ${id} ${ms(value)} ms`).join(', ');
  return `/health 200: ${healthy}; first write ${ms(timing.firstWriteMs)} ms; keys reported ${timing.keysReported === null ? '-' : timing.keysReported.toLocaleString('en-US')}`;
}

function restartLines(results: SuiteResults): string[] {
  const restart = results.restart;
  if ('skipped' in restart) return [`Skipped: ${restart.skipped}.`];
  const build = restart.build;
  return [
    `State: ${restart.keys.toLocaleString('en-US')} keys of ${restart.valueBytes} B on each of 3 nodes, built offline through RaftLogStore and KvStateMachine in ${(build.buildMs / 1000).toFixed(1)} s `
      + `(copied to the other two nodes in ${(build.copyMs / 1000).toFixed(1)} s); one node's directory ${mib(build.nodeDirectoryBytes)} MiB (log ${mib(build.walBytes)} MiB, state ${mib(build.stateBytes)} MiB).`,
    `Cold start of all 3 nodes (from spawn): ${timingCell(restart.coldStart)}.`,
    `Memory after the cold start: ${memoryCell(restart.coldStartMemory)}.`,
    `Restart of follower ${restart.followerRestart.nodeId} (SIGKILL, 0.5 s, start) while the others serve: ${timingCell(restart.followerRestart)}.`,
    `Memory after the follower restart: ${memoryCell(restart.followerRestartMemory)}.`,
  ];
}

function profileLines(results: SuiteResults, top: number): string[] {
  const profile = results.profile;
  if ('skipped' in profile) return [`Skipped: ${profile.skipped}.`];
  const lines = [
    `Leader (node ${profile.leaderId}) under ${profile.clients} clients, 100% writes of ${profile.valueBytes} B, ${(profile.measuredMs / 1000).toFixed(0)} s measured: `
      + `${ops(profile.opsPerSecond)} ops/s while profiled (p50 ${ms(profile.latencyMs.p50)} ms, p99 ${ms(profile.latencyMs.p99)} ms); `
      + `${profile.leader.samples} samples, busy ${profile.leader.busyPercent.toFixed(0)}% of ${(profile.leader.sampledMs / 1000).toFixed(1)} s.`,
    '',
    'Self time by area:',
    ...profile.leader.selfByArea.slice(0, 12).map((r) => `  ${r.ms.toFixed(0).padStart(6)} ms ${r.percent.toFixed(1).padStart(5)}%  ${r.name}`),
    '',
    'Self time by function (top):',
    ...profile.leader.selfByFunction.slice(0, top).map((r) => `  ${r.ms.toFixed(0).padStart(6)} ms ${r.percent.toFixed(1).padStart(5)}%  ${r.name}`),
    '',
    'Total time (self + callees) of our own functions (src/):',
    ...profile.leader.totalByOwnFunction.slice(0, top).map((r) => `  ${r.ms.toFixed(0).padStart(6)} ms ${r.percent.toFixed(1).padStart(5)}%  ${r.name}`),
  ];
  for (const follower of profile.followers) {
    lines.push('', `A follower (${follower.file.split('/').pop()}), busy ${follower.busyPercent.toFixed(0)}%, self time by area:`);
    lines.push(...follower.selfByArea.slice(0, 6).map((r) => `  ${r.ms.toFixed(0).padStart(6)} ms ${r.percent.toFixed(1).padStart(5)}%  ${r.name}`));
  }
  lines.push('', `Profiles kept for DevTools: ${profile.savedFiles.join(', ')}`);
  return lines;
}

function machineLines(results: SuiteResults): string[] {
  const m = results.machine;
  return [
    `nproc ${m.nproc} (${m.cpuModel}), memory ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, kernel ${m.kernel}`,
    `disk: ${m.disk}; raw write+fdatasync loop: ${m.rawFdatasyncPerSecond === null ? '-' : ops(m.rawFdatasyncPerSecond)}/s (p50 ${ms(m.rawFdatasyncP50Ms)} ms)`,
    `node ${m.node}, ${m.etcd}, commit ${m.gitCommit} (the working tree may hold uncommitted changes)`,
    `load average at start ${m.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${m.loadAverageAtEnd.map((l) => l.toFixed(2)).join(' ')}`,
  ];
}

function settingsLine(results: SuiteResults): string {
  const o = results.options;
  return `${o.runs} run(s) per case, alternated with etcd case by case; ${Number(o.warmupMs) / 1000} s warm-up + ${Number(o.durationMs) / 1000} s measured per case; `
    + `${o.keyCount} keys, uniform; closed-loop clients on keep-alive HTTP to the leader's API; ${o.loadProcesses} load generator process(es); `
    + `every case on a freshly started 3-member cluster (data kept across cases; key space filled once); medians over runs.`;
}

export function textReport(results: SuiteResults, options: SuiteOptions): string {
  const headroom = headroomLines(results);
  const failover = failoverBody(results);
  return [
    '',
    `== raft-kv benchmark (${results.mode} run${results.note === '' ? '' : `: ${results.note}`}), ${results.startedAt}, ${(results.elapsedMs / 1000).toFixed(0)} s`,
    ...machineLines(results),
    settingsLine(results),
    '',
    '== throughput and latency (medians; ratio rows: ours / etcd, above 1 = more ops/s or longer latency for ours)',
    caseTableText(results.medians, options),
    '',
    '== load generator headroom',
    textTable(headroom.header, headroom.body),
    headroom.summary,
    '',
    `== failover (SIGKILL of the leader under ${results.options.failoverClients} writing clients; each write given up and retried on the next member after ${results.options.failoverRequestTimeoutMs} ms)`,
    textTable(failover.summaryHeader, failover.summaryBody),
    '',
    textTable(failover.header, failover.body),
    '',
    '== restart',
    ...restartLines(results),
    '',
    '== CPU profile of our leader',
    ...profileLines(results, 15),
    '',
    ...(results.warnings.length > 0 ? ['== warnings', ...results.warnings.map((w) => `- ${w}`), ''] : []),
    ...(results.skipped.length > 0 ? ['== skipped', ...results.skipped.map((s) => `- ${s}`), ''] : []),
  ].join('\n');
}

export function markdownReport(results: SuiteResults, options: SuiteOptions, title: string, preface: readonly string[]): string {
  const headroom = headroomLines(results);
  const failover = failoverBody(results);
  const caseBody = caseRows(results.medians, options).map((row) => (row.isRatio ? [row.caseLabel, `*${row.system}*`, ...row.cells.map((c) => (c === '' ? '' : `*${c}*`))] : [row.caseLabel, row.system, ...row.cells]));
  return [
    `# ${title}`,
    '',
    ...preface,
    '',
    '## Machine',
    '',
    ...machineLines(results).map((line) => `- ${line}`),
    '',
    '## How it ran',
    '',
    `- ${settingsLine(results)}`,
    '- Our store with its defaults (election timeout 150-300 ms, heartbeat 50 ms, fsync on); etcd with default durability, '
      + (results.options.etcdDefaultTimeouts === true ? 'its own default timeouts (100 ms heartbeat, 1000 ms election).' : 'the same 50 ms heartbeat and 300 ms election timeout.'),
    '- Both through HTTP/JSON: our REST API (PUT/GET /kv/{key}), etcd\'s v3 JSON gateway (POST /v3/kv/put and /v3/kv/range, base64 keys and values, `serializable: true` for stale reads).',
    '- LG cores: CPU the load generator used in the window; cluster cores: CPU the three members used together (the machine has ' + results.machine.nproc + '). '
      + '\n- Peak RSS: the leader\'s VmHWM after the case (each case starts fresh processes, so it is the case\'s peak); it counts the pages of the memory-mapped database (lmdb, bbolt) the process touched. '
      + 'Anon RSS: the leader\'s RssAnon after the case, its resident memory less mapped files (heaps, buffers). '
      + '\n- Leader heap: ours, the highest JS heap in use sampled ten times a second by a preloaded probe (bench/suite/heap-probe.ts); etcd, go_memstats_heap_inuse_bytes from its /metrics after the case.',
    '',
    '## Throughput and latency',
    '',
    'Medians over runs. Ratio rows: ours / etcd (above 1 means more ops/s, or longer latency, for ours).',
    '',
    markdownTable(['case', 'system', ...CASE_COLUMNS], caseBody),
    '',
    '## Load generator headroom',
    '',
    markdownTable(headroom.header, headroom.body),
    '',
    headroom.summary,
    '',
    '## Failover',
    '',
    `SIGKILL of the leader under ${results.options.failoverClients} clients writing; a client whose request fails, or is not answered within ${results.options.failoverRequestTimeoutMs} ms, `
      + 'retries on the next member (a write a follower forwarded to the dead leader is lost, and the follower can hold the request until its own deadline: etcd about 5 s). '
      + '"kill -> new leader seen": from the kill to the first 10 ms poll at which a survivor says it leads (our /health 200 with state leader; etcd\'s /v3/maintenance/status), independent of clients; '
      + '"kill -> first ack": from the kill to the first write acknowledged after it; "longest ack gap": the longest time between two consecutive acknowledged writes in the run.',
    '',
    markdownTable(failover.summaryHeader, failover.summaryBody),
    '',
    markdownTable(failover.header, failover.body),
    '',
    '## Restart',
    '',
    ...restartLines(results).map((line) => `- ${line}`),
    '',
    '## CPU profile of our leader',
    '',
    '```',
    ...profileLines(results, 20),
    '```',
    '',
    ...(results.warnings.length > 0 ? ['## Warnings', '', ...results.warnings.map((w) => `- ${w}`), ''] : []),
    ...(results.skipped.length > 0 ? ['## Skipped', '', ...results.skipped.map((s) => `- ${s}`), ''] : []),
  ].join('\n');
}
