// A CPU profile of our leader under a write-heavy case (64 clients, 100% writes, 100-byte values):
// every node runs with `node --cpu-prof` (on the command line: Node 20 refuses it in NODE_OPTIONS), the profile is written when the
// node exits after SIGTERM, and only the samples inside the measurement window are summarized
// (profile timestamps and the suite's clock are both CLOCK_MONOTONIC). The leader's profile and the
// followers' are kept in bench/results/ for DevTools.

import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeProfile, type ProfileSummary } from '../tools/cpuprofile-summary.js';
import { remainingMs, type SuiteContext } from './context.js';
import { runLoad } from './loadgen.js';
import { OurCluster } from './ours.js';
import { removeTempDirectory } from './processes.js';
import type { LatencySummary } from './stats.js';

const CLIENTS = 64;
const VALUE_BYTES = 100;

export interface ProfileRecord {
  readonly clients: number;
  readonly valueBytes: number;
  readonly measuredMs: number;
  /** Throughput while profiled (the profiler itself costs some). */
  readonly opsPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly leaderId: number;
  readonly leader: ProfileSummary;
  readonly followers: readonly ProfileSummary[];
  readonly savedFiles: readonly string[];
}

export type ProfileOutcome = ProfileRecord | { readonly skipped: string };

export async function runProfile(context: SuiteContext, resultsDir: string, stamp: string): Promise<ProfileOutcome> {
  const { options } = context;
  if (remainingMs(context) < options.warmupMs + options.profileMs + 8000) return { skipped: 'time limit' };
  const root = join(context.root, 'profile');
  const profileDir = join(root, 'cpuprofiles');
  mkdirSync(profileDir, { recursive: true });
  const cluster = await OurCluster.create({ root, nodeArguments: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] });
  try {
    context.progress.set(`profile: ${CLIENTS} clients, 100% writes, every node under --cpu-prof`);
    const leader = await cluster.start();
    const pids = new Map(cluster.members().map((m) => [m.id, m.pid]));
    let windowFromUs = 0;
    const result = await runLoad({
      system: 'ours', endpoints: [leader.apiPort], workload: 'write', valueBytes: VALUE_BYTES, keyCount: options.keyCount, clients: CLIENTS,
      warmupMs: options.warmupMs, durationMs: options.profileMs, processes: options.loadProcesses,
      onStart: (startAtMs) => { windowFromUs = (startAtMs + options.warmupMs) * 1000; },
    });
    const windowToUs = windowFromUs + options.profileMs * 1000;
    const leaderNow = await cluster.leader(3000).catch(() => leader);
    if (leaderNow.id !== leader.id) context.warnings.push(`profile: leadership moved from node ${leader.id} to ${leaderNow.id} during the profiled case`);
    // SIGTERM: each node exits normally, which is when --cpu-prof writes its file.
    await cluster.stop(leader.id);
    const files = readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'));
    const fileOf = (pid: number | null | undefined): string | undefined => files.find((name) => pid !== null && pid !== undefined && name.includes(`.${pid}.`));
    const leaderFile = fileOf(pids.get(leader.id));
    if (leaderFile === undefined) return { skipped: `the leader's profile was not written (files: ${files.join(', ') || 'none'})` };
    mkdirSync(resultsDir, { recursive: true });
    const saved: string[] = [];
    const summarizeAndSave = (id: number, name: string, top: number): ProfileSummary => {
      const target = join(resultsDir, `profile-${stamp}-node${id}-${id === leader.id ? 'leader' : 'follower'}.cpuprofile`);
      copyFileSync(join(profileDir, name), target);
      saved.push(target);
      return summarizeProfile(target, { top, fromUs: windowFromUs, toUs: windowToUs });
    };
    const leaderSummary = summarizeAndSave(leader.id, leaderFile, 25);
    const followers: ProfileSummary[] = [];
    for (const [id, pid] of pids) {
      if (id === leader.id) continue;
      const name = fileOf(pid);
      if (name !== undefined) followers.push(summarizeAndSave(id, name, 10));
    }
    return {
      clients: CLIENTS, valueBytes: VALUE_BYTES, measuredMs: options.profileMs, opsPerSecond: result.opsPerSecond, latencyMs: result.latencyMs,
      leaderId: leader.id, leader: leaderSummary, followers, savedFiles: saved,
    };
  } finally {
    await cluster.stop();
    if (!options.keepData) removeTempDirectory(root);
  }
}
