#!/usr/bin/env node
// The benchmark suite: our store against etcd on this machine, both as 3-member clusters of real
// processes on loopback, never running at the same time.
//
//   npm run bench -- --quick     smoke run, under 3 minutes
//   npm run bench                the full run (about an hour; stops by itself)
//   npm run bench -- --help      every flag
//
// Phases: load generator headroom, throughput/latency cases (alternating systems case by case),
// failover (SIGKILL of the leader), restart with a large state, CPU profile of our leader.
// Prints a table while it runs and at the end; writes bench/results/bench-<time>.json (raw) and .md,
// and bench/BASELINE.md with --baseline. Every process it starts is ended by PID, also on Ctrl-C.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { caseLine, markdownReport, ms, ops, textReport, type SuiteResults } from './suite/report.js';
import { caseMedians, runCases } from './suite/cases.js';
import { ClusterPool, type SuiteContext } from './suite/context.js';
import { ensureEtcd, type EtcdInstall } from './suite/etcd.js';
import { failoverSummaries, runFailover } from './suite/failover.js';
import { runHeadroom } from './suite/headroom.js';
import { describeMachine } from './suite/machine.js';
import { parseOptions, USAGE, type Phase, type SuiteOptions } from './suite/options.js';
import { installCleanupHandlers, monotonicMs, registerTempDirectory, trackedCount } from './suite/processes.js';
import { snapshotDist } from './suite/paths.js';
import { runProfile } from './suite/profile.js';
import { Progress } from './suite/progress.js';
import { runRestart } from './suite/restart.js';

const benchDirectory = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench');
const resultsDirectory = join(benchDirectory, 'results');

function serializableOptions(options: SuiteOptions): Record<string, unknown> {
  return { ...options, phases: [...options.phases] };
}

function saveResults(results: SuiteResults, options: SuiteOptions, stamp: string): { json: string; markdown: string } {
  mkdirSync(resultsDirectory, { recursive: true });
  const json = join(resultsDirectory, `bench-${stamp}.json`);
  const markdown = join(resultsDirectory, `bench-${stamp}.md`);
  writeFileSync(json, `${JSON.stringify(results, (_key, value: unknown) => (value instanceof Float64Array ? Array.from(value) : value), 2)}\n`);
  writeFileSync(markdown, `${markdownReport(results, options, `Benchmark results, ${results.mode} run, ${results.startedAt}`, results.note === '' ? [] : [results.note])}\n`);
  return { json, markdown };
}

function baselinePreface(results: SuiteResults): string[] {
  const lines = results.mode === 'quick'
    ? [
      `**This is a QUICK RUN (smoke test), not a baseline**: ${results.options.runs} run per case, ${Number(results.options.durationMs) / 1000} s measured per case, `
        + `${(results.options.valueSizes as number[]).join(', ')}-byte values, ${(results.options.clientCounts as number[]).join(' and ')} clients, `
        + `${results.options.failoverRepetitions} failovers per system, ${Number(results.options.restartKeys).toLocaleString('en-US')} keys for the restart. `
        + 'Its figures show that the suite works and roughly where things stand; they are not to be compared with later runs.',
    ]
    : ['Full run: every case 3 times, alternated with etcd, medians reported.'];
  if (results.note !== '') lines.push('', `**${results.note}**`);
  lines.push('', 'Regenerate: `npm run bench -- --baseline --note "..."` (full run, about an hour) or `npm run bench -- --quick --baseline --note "..."`. '
    + `Raw figures of this run: bench/results/bench-${results.startedAt.replace(/[:.]/g, '-')}.json (git-ignored, on the machine that ran it).`);
  return lines;
}

async function main(): Promise<void> {
  let parsed: SuiteOptions | 'help';
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const options: SuiteOptions = parsed;
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const startedMs = monotonicMs();
  const progress = new Progress();
  const root = mkdtempSync(join(tmpdir(), 'raft-kv-bench-'));
  if (!options.keepData) registerTempDirectory(root);
  let results: SuiteResults | null = null;
  installCleanupHandlers(() => {
    progress.stop();
    if (results !== null) {
      results.finishedAt = new Date().toISOString();
      results.elapsedMs = monotonicMs() - startedMs;
      results.warnings.push('interrupted: the figures are partial');
      const saved = saveResults(results, options, stamp);
      process.stderr.write(`bench: partial results in ${saved.json}\n`);
    }
  });
  progress.start();
  // Every process is started from this copy, whatever rebuilds dist/ meanwhile.
  const snapshot = snapshotDist(root);

  let etcd: EtcdInstall | null = null;
  const warnings: string[] = [];
  if (options.systems.includes('etcd')) {
    progress.set('checking for etcd');
    const found = ensureEtcd((line) => progress.print(line));
    if ('missing' in found) warnings.push(`etcd left out: ${found.missing}`);
    else etcd = found;
  }
  progress.set('describing the machine (and its raw fdatasync rate)');
  const machine = describeMachine(root, etcd === null ? 'etcd: not run' : `etcd ${etcd.version}`);
  const context: SuiteContext = {
    options, root, deadlineMs: startedMs + options.timeLimitMs, progress, etcd, warnings, skipped: [], clusters: new ClusterPool(root, options, etcd),
  };
  results = {
    kind: 'raft-kv-bench', version: 1, mode: options.quick ? 'quick' : 'full', note: options.note, startedAt: startedAt.toISOString(), finishedAt: '', elapsedMs: 0,
    options: serializableOptions(options), machine, headroom: [], cases: [], medians: [], failover: [], failoverSummary: [],
    restart: { skipped: 'not run' }, profile: { skipped: 'not run' }, warnings, skipped: context.skipped,
  };
  const current = results;
  progress.print(`bench: ${current.mode} run; data under ${root}; processes started from a copy of dist/ in ${snapshot}; ${machine.nproc} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  const phase = async (name: Phase, body: () => Promise<void>): Promise<void> => {
    if (!options.phases.has(name)) {
      current.skipped.push(`${name}: not selected`);
      return;
    }
    try {
      await body();
    } catch (error) {
      warnings.push(`${name} failed: ${(error as Error).message}`);
      progress.print(`${name} FAILED: ${(error as Error).message}`);
    }
    saveResults(current, options, stamp);
  };

  await phase('headroom', async () => {
    progress.print('headroom: the load generator against a do-nothing server');
    current.headroom = await runHeadroom(context, (h) => progress.print(`  ${h.workload}, ${h.clients} clients: ${ops(h.opsPerSecond)} ops/s, p99 ${ms(h.latencyMs.p99)} ms, load generator ${h.loadgenCpuCores.toFixed(2)} cores (${h.loadgenCpuMicrosPerOp.toFixed(1)} µs CPU per request)`));
  });
  await phase('cases', async () => {
    progress.print('cases: throughput and latency');
    current.cases = await runCases(context, (record) => {
      current.cases.push(record);
      current.medians = caseMedians(current.cases);
      progress.print(caseLine(record));
    });
    current.medians = caseMedians(current.cases);
  });
  await phase('failover', async () => {
    progress.print('failover: SIGKILL of the leader under steady writes');
    current.failover = await runFailover(context, (f) => {
      current.failover.push(f);
      progress.print(`  ${f.label} rep ${f.repetition}: kill -> first ack ${f.killToFirstAckMs === null ? `none within ${ms(f.observedAfterKillMs)}` : ms(f.killToFirstAckMs)} ms, longest gap ${ms(f.longestAckGapMs)} ms, new leader ${f.newLeaderId ?? '-'}`);
    });
    current.failoverSummary = failoverSummaries(current.failover);
  });
  await phase('restart', async () => {
    progress.print(`restart: nodes holding ${options.restartKeys.toLocaleString('en-US')} keys`);
    current.restart = await runRestart(context);
  });
  await phase('profile', async () => {
    progress.print('profile: our leader under 64 writing clients');
    current.profile = await runProfile(context, resultsDirectory, stamp);
  });

  progress.stop();
  machine.loadAverageAtEnd = loadavg();
  current.finishedAt = new Date().toISOString();
  current.elapsedMs = monotonicMs() - startedMs;
  process.stdout.write(`${textReport(current, options)}\n`);
  const saved = saveResults(current, options, stamp);
  process.stdout.write(`raw figures: ${saved.json}\nreport: ${saved.markdown}\n`);
  if (options.baseline) {
    const baseline = join(benchDirectory, 'BASELINE.md');
    writeFileSync(baseline, `${markdownReport(current, options, current.mode === 'quick' ? 'Benchmark baseline: QUICK RUN (smoke test)' : 'Benchmark baseline', baselinePreface(current))}\n`);
    process.stdout.write(`baseline: ${baseline}\n`);
  }
  if (options.keepData) process.stdout.write(`data kept in ${root}\n`);
  if (trackedCount() > 0) process.stderr.write(`bench: ${trackedCount()} process(es) still running at the end; ending them\n`);
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
