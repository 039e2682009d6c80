// Our store as a system under test: three raft-node processes on loopback (peer and HTTP ports of
// their own), data under `root`, the product's default timeouts (150-300 ms election, 50 ms
// heartbeat: nothing is overridden), each node with the heap probe preloaded.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FatalWaitError, jsonOnce, waitFor } from './http-once.js';
import { distPath } from './paths.js';
import { freePort, HOST, isRunning, keepTail, readProcessMemory, sleep, spawnTracked, stopChild } from './processes.js';
import { STOP_GRACE_MS, type Member, type MemberMemory, type SystemUnderTest } from './system.js';


export interface NodePorts {
  readonly peer: number;
  readonly http: number;
}

export interface OurClusterOptions {
  /** Data directories go to root/node-<id>. */
  readonly root: string;
  readonly nodeCount?: number;
  /** Fixed ports (a prebuilt data directory records its peer addresses); allocated when absent. */
  readonly ports?: readonly NodePorts[];
  /** Extra environment for every node (NODE_OPTIONS is appended to the heap probe's). */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** Node flags before the script, for those NODE_OPTIONS refuses (--cpu-prof in Node 20). */
  readonly nodeArguments?: readonly string[];
}

interface NodeSlot {
  readonly id: number;
  readonly ports: NodePorts;
  readonly dataDir: string;
  process: ChildProcess | null;
  readonly output: string[];
}

export function clusterNodesSetting(ports: readonly NodePorts[]): string {
  return ports.map((p) => `${HOST}:${p.peer}`).join(',');
}

export async function allocatePorts(count: number): Promise<NodePorts[]> {
  const ports: NodePorts[] = [];
  const seen = new Set<number>();
  while (ports.length < count) {
    const peer = await freePort();
    const http = await freePort();
    if (seen.has(peer) || seen.has(http) || peer === http) continue;
    seen.add(peer);
    seen.add(http);
    ports.push({ peer, http });
  }
  return ports;
}

export class OurCluster implements SystemUnderTest {
  readonly kind = 'ours' as const;
  readonly label = 'raft-kv';
  private readonly slots = new Map<number, NodeSlot>();
  private readonly heapDir: string;

  private constructor(private readonly options: OurClusterOptions, ports: readonly NodePorts[]) {
    ports.forEach((p, i) => this.slots.set(i + 1, { id: i + 1, ports: p, dataDir: join(options.root, `node-${i + 1}`), process: null, output: [] }));
    this.heapDir = join(options.root, 'heap-probe');
  }

  static async create(options: OurClusterOptions): Promise<OurCluster> {
    const count = options.nodeCount ?? 3;
    const ports = options.ports ?? await allocatePorts(count);
    if (ports.length !== count) throw new Error(`${count} nodes need ${count} port pairs, got ${ports.length}`);
    mkdirSync(options.root, { recursive: true });
    return new OurCluster(options, ports);
  }

  members(): Member[] {
    return [...this.slots.values()].map((slot) => ({ id: slot.id, apiPort: slot.ports.http, pid: isRunning(slot.process) ? slot.process.pid ?? null : null }));
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
    if (isRunning(slot.process)) throw new Error(`node ${id} is already running`);
    mkdirSync(this.heapDir, { recursive: true });
    const extra = this.options.extraEnv ?? {};
    const heapProbeUrl = pathToFileURL(distPath('bench/suite/heap-probe.js')).href;
    const nodeOptions = [`--import=${heapProbeUrl}`, extra.NODE_OPTIONS ?? ''].join(' ').trim();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      NODE_ID: String(id),
      CLUSTER_NODES: clusterNodesSetting([...this.slots.values()].map((s) => s.ports)),
      HTTP_ADDR: `${HOST}:${slot.ports.http}`,
      DATA_DIR: slot.dataDir,
      BENCH_HEAP_DIR: this.heapDir,
      ...extra,
      NODE_OPTIONS: nodeOptions,
    };
    // cwd is the data root, so a developer's ./.env cannot change the settings under test.
    slot.process = spawnTracked(`raft-node ${id}`, process.execPath, [...(this.options.nodeArguments ?? []), distPath('src/cmd/raft-node.js')], { env, cwd: this.options.root, stdio: ['ignore', 'pipe', 'pipe'] });
    slot.output.length = 0;
    keepTail(slot.process, slot.output);
  }

  async leader(timeoutMs = 15_000): Promise<Member> {
    return waitFor('a leader of our cluster', async () => {
      const live = this.members().filter((m) => m.pid !== null);
      if (live.length === 0) throw new FatalWaitError(`every node exited:\n${this.logTail()}`);
      const answers = await Promise.all(live.map(async (member) => ({ member, leads: await this.leads(member) })));
      const leaders = answers.filter((a) => a.leads);
      return leaders.length === 1 ? leaders[0].member : undefined;
    }, timeoutMs, 25);
  }

  async leads(member: Member): Promise<boolean> {
    const health = await jsonOnce(member.apiPort, 'GET', '/health', undefined, 1000);
    return health?.status === 200 && health.body.state === 'leader';
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
      const heap = await this.readHeap(member.pid);
      out.push({
        id: member.id, pid: member.pid, role: member.id === leaderId ? 'leader' : 'follower', peakRssBytes: proc.peakRssBytes, rssBytes: proc.rssBytes, rssAnonBytes: proc.rssAnonBytes, rssFileBytes: proc.rssFileBytes,
        heapUsedBytes: heap?.heapUsedBytes ?? NaN, heapPeakBytes: heap?.heapPeakBytes ?? NaN,
      });
    }
    return out;
  }

  logTail(lines = 15): string {
    return [...this.slots.values()].map((slot) => `--- node ${slot.id}\n${slot.output.slice(-lines).join('\n')}`).join('\n');
  }

  dataDirOf(id: number): string {
    return this.slot(id).dataDir;
  }

  removeData(): void {
    for (const slot of this.slots.values()) rmSync(slot.dataDir, { recursive: true, force: true });
  }

  private async readHeap(pid: number): Promise<{ heapUsedBytes: number; heapPeakBytes: number } | null> {
    const path = join(this.heapDir, `heap-${pid}.json`);
    rmSync(path, { force: true });
    try {
      process.kill(pid, 'SIGUSR2');
    } catch {
      return null;
    }
    for (let attempt = 0; attempt < 40; attempt++) {
      if (existsSync(path)) {
        try {
          return JSON.parse(readFileSync(path, 'utf8')) as { heapUsedBytes: number; heapPeakBytes: number };
        } catch {
          // Renamed into place, so this is rare; try again.
        }
      }
      await sleep(25);
    }
    return null;
  }

  private slot(id: number): NodeSlot {
    const slot = this.slots.get(id);
    if (slot === undefined) throw new Error(`no node ${id}`);
    return slot;
  }
}
