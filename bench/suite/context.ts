// What every phase of the suite shares: its options, a temp root for data, the deadline, progress,
// and the clusters under test (one data directory per system and value size, filled once with every
// key, then started and stopped around each case so the two systems never run at the same time).

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { EtcdCluster, type EtcdInstall } from './etcd.js';
import { httpOnce } from './http-once.js';
import { runLoad } from './loadgen.js';
import type { SuiteOptions, SystemName } from './options.js';
import { OurCluster } from './ours.js';
import { monotonicMs } from './processes.js';
import type { Progress } from './progress.js';
import { keyName } from './requests.js';
import type { Member, SystemUnderTest } from './system.js';

/** Clients that preload the key space. */
const FILL_CLIENTS = 64;
const FILL_TIME_BOUND_MS = 180_000;

export interface SuiteContext {
  readonly options: SuiteOptions;
  readonly root: string;
  readonly deadlineMs: number;
  readonly progress: Progress;
  readonly etcd: EtcdInstall | null;
  readonly warnings: string[];
  readonly skipped: string[];
  readonly clusters: ClusterPool;
}

export function remainingMs(context: SuiteContext): number {
  return context.deadlineMs - monotonicMs();
}

export function systemsToRun(context: SuiteContext): SystemName[] {
  return context.options.systems.filter((system) => system === 'ours' || context.etcd !== null);
}

export interface Started {
  readonly system: SystemUnderTest;
  readonly leader: Member;
  /** Time from the first spawn to a serving leader, ms. */
  readonly startMs: number;
  /** Time the fill took when this start filled the key space, ms. */
  readonly fillMs: number | null;
}

export class ClusterPool {
  private readonly clusters = new Map<string, SystemUnderTest>();
  private readonly filled = new Set<string>();

  constructor(private readonly root: string, private readonly options: SuiteOptions, private readonly etcd: EtcdInstall | null) {}

  /** Starts the cluster of `system` for values of `valueBytes` (creating and filling it the first
   * time), runs `use`, and stops it again, whatever happens. */
  async with<T>(system: SystemName, valueBytes: number, use: (started: Started) => Promise<T>): Promise<T> {
    const key = `${system}-${valueBytes}`;
    let cluster = this.clusters.get(key);
    if (cluster === undefined) {
      cluster = await this.create(system, join(this.root, key));
      this.clusters.set(key, cluster);
    }
    const spawnedMs = monotonicMs();
    let leader: Member;
    try {
      leader = await cluster.start();
    } catch (error) {
      const tail = cluster.logTail();
      await cluster.stop();
      throw new Error(`${cluster.label} did not start: ${(error as Error).message}\n${tail}`);
    }
    const startMs = monotonicMs() - spawnedMs;
    let stopWith = leader.id;
    try {
      let fillMs: number | null = null;
      if (!this.filled.has(key)) {
        fillMs = await this.fill(cluster, leader, valueBytes);
        this.filled.add(key);
      }
      const result = await use({ system: cluster, leader, startMs, fillMs });
      stopWith = (await cluster.leader(2000).catch(() => leader)).id;
      return result;
    } finally {
      await cluster.stop(stopWith);
      // Flush what the stopped cluster left dirty in the page cache, so that the next case (often the
      // other system) does not pay for its writeback.
      spawnSync('sync', { timeout: 120_000 });
    }
  }

  private async create(system: SystemName, root: string): Promise<SystemUnderTest> {
    if (system === 'ours') return OurCluster.create({ root });
    if (this.etcd === null) throw new Error('etcd is not available');
    return EtcdCluster.create({ root, install: this.etcd, etcdDefaults: this.options.etcdDefaultTimeouts });
  }

  /** Writes every key once, then checks that one reads back. */
  private async fill(cluster: SystemUnderTest, leader: Member, valueBytes: number): Promise<number> {
    const startedMs = monotonicMs();
    const result = await runLoad({
      system: cluster.kind, endpoints: [leader.apiPort], workload: 'fill', valueBytes, keyCount: this.options.keyCount,
      clients: FILL_CLIENTS, warmupMs: 0, durationMs: FILL_TIME_BOUND_MS, processes: this.options.loadProcesses,
    });
    if (result.ok !== this.options.keyCount) {
      throw new Error(`filling ${cluster.label} wrote ${result.ok} of ${this.options.keyCount} keys (${JSON.stringify(result.errors)}; ${result.errorSamples.join(' | ')})`);
    }
    const probeKey = keyName(this.options.keyCount - 1);
    const answer = cluster.kind === 'ours'
      ? await httpOnce(leader.apiPort, 'GET', `/kv/${probeKey}`)
      : await httpOnce(leader.apiPort, 'POST', '/v3/kv/range', JSON.stringify({ key: Buffer.from(probeKey).toString('base64') }));
    const holdsValue = answer.status === 200 && (cluster.kind === 'ours' ? answer.text.includes(`"key":"${probeKey}"`) : answer.text.includes('"kvs"'));
    if (!holdsValue) throw new Error(`after filling ${cluster.label}, ${probeKey} does not read back: ${answer.status} ${answer.text.slice(0, 200)}`);
    return monotonicMs() - startedMs;
  }
}
