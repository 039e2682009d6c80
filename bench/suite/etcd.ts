// etcd as the system to compare with: Debian's etcd-server (installed by the suite when missing), three
// members on loopback with client and peer ports of their own, data under `root`, default durability
// (fsync on). Timeouts: the same 50 ms heartbeat / 300 ms election timeout as our store's defaults,
// unless `etcdDefaults` asks for etcd's own (100 ms / 1000 ms). History is auto-compacted to the last
// 100,000 revisions, like our HISTORY_RETENTION_REVISIONS, and the backend quota raised to 8 GiB
// so a long run of 10 KB writes cannot hit etcd's 2 GiB default alarm.

import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FatalWaitError, httpOnce, jsonOnce, waitFor } from './http-once.js';
import { freePort, HOST, isRunning, keepTail, readProcessMemory, spawnTracked, stopChild } from './processes.js';
import { STOP_GRACE_MS, type Member, type MemberMemory, type SystemUnderTest } from './system.js';

export interface EtcdInstall {
  readonly binary: string;
  readonly version: string;
}

function findEtcd(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : null;
}

/** The etcd binary, installing Debian's etcd-server first when it is missing (needs root). */
export function ensureEtcd(log: (line: string) => void): EtcdInstall | { readonly missing: string } {
  let binary = findEtcd();
  if (binary === null) {
    if (process.getuid?.() !== 0) return { missing: 'etcd is not installed and this is not root: apt-get install -y etcd-server, then run again' };
    log('etcd not found: installing Debian\'s etcd-server (apt-get update && apt-get install -y etcd-server)');
    const installed = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server'], { encoding: 'utf8', timeout: 300_000 });
    if (installed.status !== 0) return { missing: `apt-get install etcd-server failed: ${(installed.stderr || installed.stdout).slice(-400)}` };
    binary = findEtcd();
    if (binary === null) return { missing: 'etcd-server was installed but no etcd binary is on PATH' };
  }
  const versionText = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const version = /etcd Version:\s*(\S+)/.exec(versionText)?.[1] ?? 'unknown';
  return { binary, version };
}

interface EtcdSlot {
  readonly id: number;
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  process: ChildProcess | null;
  readonly output: string[];
}

export interface EtcdClusterOptions {
  readonly root: string;
  readonly install: EtcdInstall;
  /** etcd's own timeouts (100 ms heartbeat, 1000 ms election) instead of ours (50 / 300). */
  readonly etcdDefaults?: boolean;
}

export class EtcdCluster implements SystemUnderTest {
  readonly kind = 'etcd' as const;
  readonly label: string;
  private readonly slots = new Map<number, EtcdSlot>();
  private readonly token = `bench-${process.pid}-${Date.now()}`;

  private constructor(private readonly options: EtcdClusterOptions, ports: readonly { client: number; peer: number }[]) {
    this.label = `etcd ${options.install.version}`;
    ports.forEach((p, i) => this.slots.set(i + 1, { id: i + 1, name: `m${i + 1}`, clientPort: p.client, peerPort: p.peer, dataDir: join(options.root, `m${i + 1}`), process: null, output: [] }));
  }

  static async create(options: EtcdClusterOptions): Promise<EtcdCluster> {
    const ports: { client: number; peer: number }[] = [];
    const seen = new Set<number>();
    while (ports.length < 3) {
      const client = await freePort();
      const peer = await freePort();
      if (seen.has(client) || seen.has(peer) || client === peer) continue;
      seen.add(client);
      seen.add(peer);
      ports.push({ client, peer });
    }
    mkdirSync(options.root, { recursive: true });
    return new EtcdCluster(options, ports);
  }

  members(): Member[] {
    return [...this.slots.values()].map((slot) => ({ id: slot.id, apiPort: slot.clientPort, pid: isRunning(slot.process) ? slot.process.pid ?? null : null }));
  }

  pids(): number[] {
    return this.members().flatMap((m) => (m.pid === null ? [] : [m.pid]));
  }

  async start(): Promise<Member> {
    for (const id of this.slots.keys()) this.startMember(id);
    return this.leader(30_000);
  }

  startMember(id: number): void {
    const slot = this.slot(id);
    if (isRunning(slot.process)) throw new Error(`etcd member ${id} is already running`);
    const initialCluster = [...this.slots.values()].map((s) => `${s.name}=http://${HOST}:${s.peerPort}`).join(',');
    const timeouts = this.options.etcdDefaults === true ? [] : ['--heartbeat-interval', '50', '--election-timeout', '300'];
    const args = [
      '--name', slot.name, '--data-dir', slot.dataDir,
      '--listen-client-urls', `http://${HOST}:${slot.clientPort}`, '--advertise-client-urls', `http://${HOST}:${slot.clientPort}`,
      '--listen-peer-urls', `http://${HOST}:${slot.peerPort}`, '--initial-advertise-peer-urls', `http://${HOST}:${slot.peerPort}`,
      '--initial-cluster', initialCluster, '--initial-cluster-token', this.token, '--initial-cluster-state', 'new',
      ...timeouts,
      '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '100000',
      '--quota-backend-bytes', String(8 * 1024 * 1024 * 1024),
      '--logger', 'zap', '--log-level', 'warn', '--log-outputs', 'stderr',
    ];
    // Only PATH: no ETCD_* variable from the environment may change the settings under test.
    slot.process = spawnTracked(`etcd ${slot.name}`, this.options.install.binary, args, { env: { PATH: process.env.PATH ?? '' }, cwd: this.options.root, stdio: ['ignore', 'pipe', 'pipe'] });
    slot.output.length = 0;
    keepTail(slot.process, slot.output);
  }

  async leader(timeoutMs = 15_000): Promise<Member> {
    return waitFor('a leader of the etcd cluster', async () => {
      const live = this.members().filter((m) => m.pid !== null);
      if (live.length === 0) throw new FatalWaitError(`every member exited:\n${this.logTail()}`);
      const answers = await Promise.all(live.map(async (member) => ({ member, leads: await this.leads(member) })));
      const leaders = answers.filter((a) => a.leads);
      if (leaders.length !== 1) return undefined;
      // The leader answers status before it can commit: one write proves it serves.
      const probe = await httpOnce(leaders[0].member.apiPort, 'POST', '/v3/kv/put', JSON.stringify({ key: Buffer.from('bench-probe').toString('base64'), value: '' }), 2000);
      return probe.status === 200 ? leaders[0].member : undefined;
    }, timeoutMs, 25);
  }

  async leads(member: Member): Promise<boolean> {
    const status = await jsonOnce(member.apiPort, 'POST', '/v3/maintenance/status', '{}', 1000);
    const header = status?.body.header as { member_id?: unknown } | undefined;
    return status?.status === 200 && header?.member_id !== undefined && header.member_id === status.body.leader;
  }

  async killMember(id: number, signal: NodeJS.Signals): Promise<void> {
    const slot = this.slot(id);
    await stopChild(slot.process, signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') slot.process = null;
  }

  /** The leader first (it hands leadership over and goes), then the others one by one (stopped
   * together, two etcd members can wait on each other for the whole grace period), each with a
   * graceful SIGTERM and SIGKILL after a grace period. */
  async stop(leaderId = 0): Promise<void> {
    const slots = [...this.slots.values()].sort((a, b) => Number(b.id === leaderId) - Number(a.id === leaderId));
    for (const slot of slots) {
      await stopChild(slot.process, 'SIGTERM', STOP_GRACE_MS);
      slot.process = null;
    }
  }

  async memory(leaderId: number): Promise<MemberMemory[]> {
    const out: MemberMemory[] = [];
    for (const member of this.members()) {
      if (member.pid === null) continue;
      const proc = readProcessMemory(member.pid);
      if (proc === null) continue;
      out.push({
        id: member.id, pid: member.pid, role: member.id === leaderId ? 'leader' : 'follower', peakRssBytes: proc.peakRssBytes, rssBytes: proc.rssBytes, rssAnonBytes: proc.rssAnonBytes, rssFileBytes: proc.rssFileBytes,
        heapUsedBytes: await this.goHeapInUse(member.apiPort), heapPeakBytes: NaN,
      });
    }
    return out;
  }

  logTail(lines = 15): string {
    return [...this.slots.values()].map((slot) => `--- etcd ${slot.name}\n${slot.output.slice(-lines).join('\n')}`).join('\n');
  }

  removeData(): void {
    for (const slot of this.slots.values()) rmSync(slot.dataDir, { recursive: true, force: true });
  }

  private async goHeapInUse(port: number): Promise<number> {
    try {
      const answer = await httpOnce(port, 'GET', '/metrics', undefined, 2000);
      const match = /^go_memstats_heap_inuse_bytes\s+(\S+)$/m.exec(answer.text);
      return match === null ? NaN : Number(match[1]);
    } catch {
      return NaN;
    }
  }

  private slot(id: number): EtcdSlot {
    const slot = this.slots.get(id);
    if (slot === undefined) throw new Error(`no etcd member ${id}`);
    return slot;
  }
}
