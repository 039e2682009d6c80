// A cluster of raft-node processes, each in a network namespace of its own (see netns.ts), plus a
// kv-gateway on the host side of the bridge. Nodes are killed, paused, resumed and restarted by the
// PID we started; partitions are the lab's iptables rules. Tests wait on observable events
// (health answers, log lines) with deadlines.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeClusterId, parseClusterNodes } from '../../src/server/settings.js';
import { exchange, type Endpoint } from './http-probe.js';
import { DATA_DIR_PREFIX, NetLab, cleanLeftovers, hostForwardingHint, onExitCleanup } from './netns.js';
import { waitFor } from './harness.js';

const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const nodeScript = join(distRoot, 'src/cmd/raft-node.js');
const gatewayScript = join(distRoot, 'src/cmd/kv-gateway.js');

export const PEER_PORT = 7100;
export const HTTP_PORT = 8100;
const LOG_LINES_KEPT = 20_000;

export interface NsClusterOptions {
  /** For names and log dumps. */
  readonly name: string;
  readonly nodes?: number;
  /** Extra node settings (SNAPSHOT_EVERY_ENTRIES...). Election timeouts default to 300-600 ms. */
  readonly env?: Record<string, string>;
  readonly gateway?: boolean;
}

export type NodeState = 'running' | 'paused' | 'dead';

export interface NsNode {
  readonly id: number;
  readonly address: string;
  readonly api: Endpoint;
  readonly peerAddress: string;
  readonly dataDir: string;
  process: ChildProcess | null;
  state: NodeState;
  /** Log lines of every incarnation, oldest dropped past a bound. */
  readonly lines: string[];
  starts: number;
}

export interface Health {
  readonly status: string;
  readonly state?: string;
  readonly term?: number;
  readonly leader?: number;
  readonly commitIndex?: number;
  readonly appliedIndex?: number;
  readonly nodeId?: number;
}

export interface NodeStatus {
  readonly nodeId: number;
  readonly state: string;
  readonly term: number;
  readonly leader: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly revision: number;
  readonly keys: number;
  readonly followers?: readonly { readonly id: number; readonly matchIndex: number; readonly lag: number; readonly state: string }[];
  readonly membership?: { readonly members: readonly { readonly id: number; readonly role: string; readonly peerAddr: string; readonly httpAddr: string }[] };
}

async function freePortOn(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export class NsCluster {
  readonly nodes = new Map<number, NsNode>();
  readonly lab: NetLab;
  readonly root: string;
  readonly clusterNodes: string;
  readonly clusterId: string;
  gateway: Endpoint | null = null;
  private gatewayProcess: ChildProcess | null = null;
  readonly gatewayLines: string[] = [];
  private stopped = false;
  private readonly removeExitHook: () => void;

  private constructor(readonly options: NsClusterOptions) {
    const count = options.nodes ?? 3;
    this.lab = NetLab.create(count);
    this.root = mkdtempSync(join(tmpdir(), `${DATA_DIR_PREFIX}${process.pid}-`));
    this.clusterNodes = Array.from({ length: count }, (_, i) => `${this.lab.address(i + 1)}:${PEER_PORT}`).join(',');
    this.clusterId = computeClusterId(parseClusterNodes(this.clusterNodes), '');
    for (let id = 1; id <= count; id++) {
      const address = this.lab.address(id);
      this.nodes.set(id, {
        id, address, api: { name: `node${id}`, host: address, port: HTTP_PORT }, peerAddress: `${address}:${PEER_PORT}`,
        dataDir: join(this.root, `node-${id}`), process: null, state: 'dead', lines: [], starts: 0,
      });
    }
    // Whatever happens to the test process, our nodes and namespaces go with it.
    this.removeExitHook = onExitCleanup(() => this.destroySync());
  }

  /** Cleans leftovers of earlier runs, builds the lab, starts every node (and the gateway). */
  static async start(options: NsClusterOptions): Promise<NsCluster> {
    const removed = cleanLeftovers();
    if (removed.length > 0) console.log(`# cleaned leftovers of earlier runs: ${removed.join(', ')}`);
    const cluster = new NsCluster(options);
    try {
      for (const id of cluster.nodes.keys()) cluster.startNode(id);
      const crash = cluster.startupCrash();
      crash.promise.catch(() => undefined);
      try {
        if (options.gateway !== false) await cluster.startGateway();
        const leader = cluster.waitForLeader(20_000);
        leader.catch(() => undefined);
        await Promise.race([leader, crash.promise]);
      } finally {
        crash.stopWatching();
      }
    } catch (error) {
      console.error(`# ${options.name}: the cluster did not start; logs kept in ${cluster.dumpLogs(`${options.name}-start`)}`);
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Rejects as soon as a majority of the nodes has exited (a node that cannot start), with its last lines. */
  private startupCrash(): { promise: Promise<never>; stopWatching: () => void } {
    let watching = true;
    const promise = new Promise<never>((_resolve, reject) => {
      const exited = new Set<number>();
      for (const node of this.nodes.values()) {
        node.process?.once('exit', () => {
          exited.add(node.id);
          if (watching && exited.size > this.nodes.size / 2) {
            const tail = node.lines.filter((l) => !l.startsWith('===')).slice(-6).join('\n');
            reject(new Error(`${exited.size} of ${this.nodes.size} nodes exited while the cluster was starting; node ${node.id} said:\n${tail}`));
          }
        });
      }
    });
    return { promise, stopWatching: () => { watching = false; } };
  }

  node(id: number): NsNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  get ids(): number[] {
    return [...this.nodes.keys()];
  }

  /** Every API a client may use: each node's and the gateway's. */
  endpoints(): Endpoint[] {
    return [...[...this.nodes.values()].map((n) => n.api), ...(this.gateway ? [this.gateway] : [])];
  }

  /** Whether the endpoint named `name` (node3, gateway) is a node stopped with SIGSTOP. */
  isPaused(name: string): boolean {
    const match = /^node(\d+)$/.exec(name);
    return match !== null && this.nodes.get(Number(match[1]))?.state === 'paused';
  }

  startNode(id: number): void {
    const node = this.node(id);
    if (node.state !== 'dead') throw new Error(`node ${id} is ${node.state}`);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_ID: String(id),
      CLUSTER_NODES: this.clusterNodes,
      HTTP_ADDR: `${node.address}:${HTTP_PORT}`,
      DATA_DIR: node.dataDir,
      ELECTION_TIMEOUT_MIN: '300',
      ELECTION_TIMEOUT_MAX: '600',
      HEARTBEAT_INTERVAL: '50',
      LOG_LEVEL: 'info',
      ...this.options.env,
    };
    const { command, args } = this.lab.execArgv(id, [process.execPath, nodeScript]);
    // Only the settings given here: a developer's .env must not leak in (cwd has none).
    const child = spawn(command, args, { env, cwd: this.root, stdio: ['ignore', 'pipe', 'pipe'] });
    node.process = child;
    node.state = 'running';
    node.starts += 1;
    node.lines.push(`=== test: start #${node.starts} of node ${id}, pid ${child.pid} ===`);
    this.capture(child, node.lines);
    child.once('exit', (code, signal) => {
      node.lines.push(`=== test: node ${id} pid ${child.pid} exited (${signal ?? `code ${code}`}) ===`);
      if (node.process === child) {
        node.process = null;
        node.state = 'dead';
      }
    });
  }

  async startGateway(): Promise<void> {
    const port = await freePortOn(this.lab.hostAddress);
    this.gateway = { name: 'gateway', host: this.lab.hostAddress, port };
    const child = spawn(process.execPath, [gatewayScript], {
      env: { PATH: process.env.PATH ?? '', GATEWAY_ADDR: `${this.lab.hostAddress}:${port}`, CLUSTER_NODES: this.clusterNodes, LOG_LEVEL: 'warn' },
      cwd: this.root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.gatewayProcess = child;
    this.capture(child, this.gatewayLines);
  }

  private capture(child: ChildProcess, lines: string[]): void {
    let partial = '';
    const keep = (chunk: Buffer): void => {
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      if (lines.length > LOG_LINES_KEPT) lines.splice(0, lines.length - LOG_LINES_KEPT);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /** SIGKILL by PID, and wait until the process is reaped (so its data-dir lock PID is free). */
  async kill(id: number): Promise<void> {
    const node = this.node(id);
    const child = node.process;
    if (child === null) return;
    const exited = new Promise<void>((r) => { if (child.exitCode !== null || child.signalCode !== null) r(); else child.once('exit', () => r()); });
    child.kill('SIGKILL');
    await exited;
  }

  pause(id: number): void {
    const node = this.node(id);
    if (node.process === null || node.state !== 'running') throw new Error(`node ${id} is not running`);
    node.process.kill('SIGSTOP');
    node.state = 'paused';
    node.lines.push(`=== test: SIGSTOP ===`);
  }

  resume(id: number): void {
    const node = this.node(id);
    if (node.process === null || node.state !== 'paused') throw new Error(`node ${id} is not paused`);
    node.process.kill('SIGCONT');
    node.state = 'running';
    node.lines.push(`=== test: SIGCONT ===`);
  }

  async restart(id: number): Promise<void> {
    await this.kill(id);
    this.startNode(id);
  }

  /** The PID we hold is the node's own (`ip netns exec` execs): its command line names raft-node. */
  async verifyPid(id: number): Promise<void> {
    const pid = this.node(id).process?.pid;
    await waitFor(`node ${id} (pid ${pid}) to be raft-node itself`, async () => {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv[0] === process.execPath && argv[1] === nodeScript ? true : undefined;
    }, 5000, 20);
  }

  async health(id: number, timeoutMs = 1000): Promise<Health | undefined> {
    const answer = await exchange(this.node(id).api, 'GET', '/health', { timeoutMs });
    return answer.kind === 'answer' && typeof answer.body === 'object' ? (answer.body as Health) : undefined;
  }

  /** This node's own line of /cluster/status (it asks the others too; we take our own). */
  async status(id: number, timeoutMs = 2000): Promise<NodeStatus | undefined> {
    const answer = await exchange(this.node(id).api, 'GET', '/cluster/status', { timeoutMs });
    if (answer.kind !== 'answer' || answer.status !== 200) return undefined;
    const nodes = (answer.body as { nodes?: NodeStatus[] }).nodes ?? [];
    return nodes.find((n) => n.nodeId === id);
  }

  /** The one node that says it leads and is healthy, once every live node in `among` names it. */
  async waitForLeader(timeoutMs = 15_000, among: readonly number[] = this.ids, exclude: readonly number[] = []): Promise<number> {
    try {
      return await waitFor(`one leader among ${among.join(',')}`, async () => {
        const live = among.filter((id) => this.node(id).state === 'running');
        const healths = await Promise.all(live.map(async (id) => ({ id, health: await this.health(id) })));
        const leaders = healths.filter((h) => h.health?.state === 'leader' && h.health.status === 'healthy');
        if (leaders.length !== 1 || exclude.includes(leaders[0].id)) return undefined;
        const leader = leaders[0].id;
        const term = leaders[0].health?.term;
        return healths.every((h) => h.health?.leader === leader && h.health.term === term) ? leader : undefined;
      }, timeoutMs, 50);
    } catch (error) {
      throw new Error(`${(error as Error).message}${hostForwardingHint()}`);
    }
  }

  /** Whether any log line of node `id` (any incarnation from `fromStart` on) has this message. */
  logHas(id: number, message: string, fromStart = 1): boolean {
    const lines = this.node(id).lines;
    let start = 0;
    if (fromStart > 1) {
      const marker = lines.findIndex((l) => l.startsWith(`=== test: start #${fromStart} `));
      if (marker < 0) return false;
      start = marker;
    }
    for (let i = start; i < lines.length; i++) if (lines[i].includes(`"msg":"${message}"`)) return true;
    return false;
  }

  logLines(id: number, message: string): Record<string, unknown>[] {
    return this.node(id).lines.filter((l) => l.includes(`"msg":"${message}"`)).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } });
  }

  /** Writes every process's log to a directory that outlives the run; returns it. */
  dumpLogs(label: string): string {
    const dir = join(tmpdir(), 'rkv-fault-logs', `${label}-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    for (const node of this.nodes.values()) writeFileSync(join(dir, `node-${node.id}.log`), node.lines.join('\n'));
    writeFileSync(join(dir, 'gateway.log'), this.gatewayLines.join('\n'));
    return dir;
  }

  /** Ends every process by PID (SIGCONT first, for paused ones), removes the lab and the data. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.ids.map(async (id) => {
      const child = this.node(id).process;
      if (child === null) return;
      const exited = new Promise<void>((r) => { if (child.exitCode !== null || child.signalCode !== null) r(); else child.once('exit', () => r()); });
      child.kill('SIGKILL');
      await exited;
    }));
    const gateway = this.gatewayProcess;
    if (gateway !== null && gateway.exitCode === null && gateway.signalCode === null) {
      const exited = new Promise<void>((r) => gateway.once('exit', () => r()));
      gateway.kill('SIGKILL');
      await exited;
    }
    this.lab.destroy();
    rmSync(this.root, { recursive: true, force: true });
    this.removeExitHook();
  }

  /** At process exit: synchronous, best effort. */
  private destroySync(): void {
    for (const node of this.nodes.values()) {
      const pid = node.process?.pid;
      if (pid !== undefined) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    const gatewayPid = this.gatewayProcess?.pid;
    if (gatewayPid !== undefined && this.gatewayProcess?.exitCode === null && this.gatewayProcess.signalCode === null) {
      try { process.kill(gatewayPid, 'SIGKILL'); } catch { /* gone */ }
    }
    this.lab.destroy();
    rmSync(this.root, { recursive: true, force: true });
  }
}
