// A cluster of real raft-node processes whose membership changes while it runs: founding members
// started with CLUSTER_NODES, others with JOIN, any of them stopped, killed or restarted with extra
// flags (--force-new-cluster, --restore). Each node keeps its ports and data directory for the
// whole test, so a restart is the same machine coming back.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, http, waitFor } from '../harness.js';

export const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const repoRoot = resolve(distRoot, '..');
const nodeScript = join(distRoot, 'src/cmd/raft-node.js');
const gatewayScript = join(distRoot, 'src/cmd/kv-gateway.js');
export const HOST = '127.0.0.1';

export interface MemberRow {
  readonly id: number;
  readonly role: 'voter' | 'learner';
  readonly peerAddr: string;
  readonly httpAddr: string;
  readonly matchIndex?: number;
  readonly caughtUp?: boolean;
  readonly live?: boolean;
}

export interface MembersAnswer {
  readonly clusterId: string;
  readonly leader: number;
  readonly term: number;
  readonly view: 'leader' | 'local';
  readonly members: readonly MemberRow[];
  /** The configuration the cluster's log starts from, which a joining node records at index 0. */
  readonly bootstrapMembership?: { readonly members: readonly MemberRow[] } | null;
}

export interface Machine {
  readonly id: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  /** How it was first started: founding member, or joining through another's HTTP port. */
  readonly joinPort: number | null;
  process: ChildProcess | null;
  /** Every line it ever wrote (all its runs), and the exit of its last run. */
  output: string[];
  exit: Promise<number | null> | null;
}

export interface DynamicClusterOptions {
  readonly founders: number;
  /** Environment for every node (timeouts, AUTO_PROMOTE, snapshot settings...). */
  readonly env?: Record<string, string>;
  readonly gateway?: boolean;
  /** Founding members not started with the others (the test starts them later). */
  readonly startLater?: readonly number[];
}

export const TEST_TIMING = { ELECTION_TIMEOUT_MIN: '300', ELECTION_TIMEOUT_MAX: '600', HEARTBEAT_INTERVAL: '50' };

export class DynamicCluster {
  readonly machines = new Map<number, Machine>();
  readonly root = mkdtempSync(join(tmpdir(), 'raft-kv-membership-'));
  gatewayPort = 0;
  private gatewayProcess: ChildProcess | null = null;
  private clusterNodes = '';
  private readonly portsUsed = new Set<number>();

  private constructor(private readonly options: DynamicClusterOptions) {}

  static async start(options: DynamicClusterOptions): Promise<DynamicCluster> {
    const cluster = new DynamicCluster(options);
    const founders: Machine[] = [];
    for (let id = 1; id <= options.founders; id++) founders.push(await cluster.allocate(id, null));
    cluster.clusterNodes = founders.map((m) => `${HOST}:${m.peerPort}`).join(',');
    for (const machine of founders) if (options.startLater?.includes(machine.id) !== true) cluster.start(machine.id);
    if (options.gateway === true) {
      cluster.gatewayPort = await cluster.uniquePort();
      cluster.startGateway();
    }
    return cluster;
  }

  /** Reserve ports and a data directory for machine `id` (joining through `joinPort`, or founding). */
  async allocate(id: number, joinPort: number | null): Promise<Machine> {
    if (this.machines.has(id)) throw new Error(`machine ${id} exists`);
    const machine: Machine = { id, peerPort: await this.uniquePort(), httpPort: await this.uniquePort(), dataDir: join(this.root, `node-${id}`), joinPort, process: null, output: [], exit: null };
    this.machines.set(id, machine);
    return machine;
  }

  /** A free port not yet handed out by this cluster (the OS may offer a just-freed port again). */
  private async uniquePort(): Promise<number> {
    for (;;) {
      const port = await freePort();
      if (!this.portsUsed.has(port)) {
        this.portsUsed.add(port);
        return port;
      }
    }
  }

  machine(id: number): Machine {
    const machine = this.machines.get(id);
    if (machine === undefined) throw new Error(`no machine ${id}`);
    return machine;
  }

  /** A new node that asks to join through `viaId`'s HTTP API. */
  async join(id: number, viaId: number, env: Record<string, string> = {}): Promise<Machine> {
    const machine = await this.allocate(id, this.machine(viaId).httpPort);
    this.start(id, [], env);
    return machine;
  }

  /** Start (or restart) a machine with its own settings, plus `args` and `env`. */
  start(id: number, args: readonly string[] = [], env: Record<string, string> = {}): void {
    const machine = this.machine(id);
    if (machine.process !== null) throw new Error(`machine ${id} is running`);
    const settings: Record<string, string> = {
      NODE_ID: String(id),
      NODE_ADDR: `${HOST}:${machine.peerPort}`,
      HTTP_ADDR: `${HOST}:${machine.httpPort}`,
      DATA_DIR: machine.dataDir,
      LOG_LEVEL: 'info',
      ...TEST_TIMING,
      ...this.options.env,
      ...(machine.joinPort === null ? { CLUSTER_NODES: this.clusterNodes } : { JOIN: `${HOST}:${machine.joinPort}` }),
      ...env,
    };
    for (const [key, value] of Object.entries(settings)) if (value === '') delete settings[key];
    const child = spawn(process.execPath, [nodeScript, ...args], { env: { PATH: process.env.PATH ?? '', ...settings }, stdio: ['ignore', 'pipe', 'pipe'], cwd: this.root });
    machine.process = child;
    const keep = (chunk: Buffer): void => {
      machine.output.push(chunk.toString('utf8'));
      if (machine.output.length > 5000) machine.output.splice(0, machine.output.length - 5000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    machine.exit = new Promise((resolveExit) => child.once('exit', (code) => {
      if (machine.process === child) machine.process = null;
      resolveExit(code);
    }));
  }

  startGateway(env: Record<string, string> = {}): void {
    const output: string[] = [];
    const child = spawn(process.execPath, [gatewayScript], {
      env: { PATH: process.env.PATH ?? '', GATEWAY_ADDR: `${HOST}:${this.gatewayPort}`, CLUSTER_NODES: this.clusterNodes, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'], cwd: this.root,
    });
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
    this.gatewayProcess = child;
  }

  running(id: number): boolean {
    return this.machine(id).process !== null;
  }

  /** Signal a machine we started, by PID; SIGKILL and SIGTERM wait for the exit. */
  async signal(id: number, signal: NodeJS.Signals): Promise<void> {
    const machine = this.machine(id);
    const child = machine.process;
    if (child === null) return;
    child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') await machine.exit;
  }

  /** Wait for a machine to exit by itself (a removed node does); resolves with its exit code. */
  async exited(id: number, timeoutMs: number): Promise<number | null> {
    const machine = this.machine(id);
    if (machine.process === null) return machine.exit === null ? null : machine.exit;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`machine ${id} did not exit within ${timeoutMs} ms`)), timeoutMs); });
    try {
      return await Promise.race([machine.exit as Promise<number | null>, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  logsOf(id: number): string {
    return this.machine(id).output.join('');
  }

  httpPorts(): number[] {
    return [...this.machines.values()].map((m) => m.httpPort);
  }

  /** GET /cluster/members through any running machine (the leader's view when it answers). */
  async members(viaId?: number, timeoutMs = 2000): Promise<MembersAnswer> {
    const candidates = viaId !== undefined ? [this.machine(viaId)] : [...this.machines.values()].filter((m) => m.process !== null);
    let lastError: unknown = new Error('no running machine');
    for (const machine of candidates) {
      try {
        const answer = await http(machine.httpPort, 'GET', '/cluster/members', undefined, timeoutMs);
        if (answer.status === 200) return answer.body as MembersAnswer;
        lastError = new Error(`HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /** Wait until the leader's view matches `predicate`. */
  async waitForMembers(what: string, predicate: (view: MembersAnswer) => boolean, timeoutMs = 60_000): Promise<MembersAnswer> {
    return waitFor(what, async () => {
      const view = await this.members();
      return view.view === 'leader' && predicate(view) ? view : undefined;
    }, timeoutMs, 100);
  }

  async leader(timeoutMs = 20_000): Promise<number> {
    const view = await this.waitForMembers('a leader', (v) => v.leader !== 0, timeoutMs);
    return view.leader;
  }

  async health(id: number): Promise<Record<string, unknown> | undefined> {
    try {
      return (await http(this.machine(id).httpPort, 'GET', '/health', undefined, 1000)).body as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  /** A JSON request to machine `id`'s API. */
  request(id: number, method: string, path: string, body?: unknown, timeoutMs = 15_000): ReturnType<typeof http> {
    return http(this.machine(id).httpPort, method, path, body === undefined ? undefined : JSON.stringify(body), timeoutMs);
  }

  /** Write the last lines of every machine's log to a file, for a failing test's post-mortem. */
  dumpLogs(name: string): string {
    const path = join(tmpdir(), `raft-kv-${name}-${Date.now()}.log`);
    const parts: string[] = [];
    for (const machine of this.machines.values()) parts.push(`===== node ${machine.id} =====\n${machine.output.join('').split('\n').slice(-400).join('\n')}`);
    writeFileSync(path, parts.join('\n'));
    return path;
  }

  async stop(keepFiles = false): Promise<void> {
    for (const id of this.machines.keys()) await this.signal(id, 'SIGKILL');
    if (this.gatewayProcess !== null && this.gatewayProcess.exitCode === null) {
      const exited = new Promise<void>((r) => this.gatewayProcess?.once('exit', () => r()));
      this.gatewayProcess.kill('SIGKILL');
      await exited;
    }
    if (!keepFiles) rmSync(this.root, { recursive: true, force: true });
  }
}

export function voters(view: MembersAnswer): number[] {
  return view.members.filter((m) => m.role === 'voter').map((m) => m.id).sort((a, b) => a - b);
}

export function learners(view: MembersAnswer): number[] {
  return view.members.filter((m) => m.role === 'learner').map((m) => m.id).sort((a, b) => a - b);
}
