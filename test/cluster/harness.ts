// Real processes on loopback: raft-node and kv-gateway started as OS processes with their own data
// directories, killed and restarted by PID. Tests wait on observable events with deadlines.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const nodeScript = join(distRoot, 'src/cmd/raft-node.js');
const gatewayScript = join(distRoot, 'src/cmd/kv-gateway.js');
const HOST = '127.0.0.1';

export interface HttpAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** One HTTP exchange on loopback (no keep-alive, so a killed process cannot strand a socket). */
export function http(port: number, method: string, path: string, body?: string, timeoutMs = 5000): Promise<HttpAnswer> {
  return new Promise((resolveAnswer, reject) => {
    const req = request({ host: HOST, port, method, path, timeout: timeoutMs, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* keep the text */ }
        resolveAnswer({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** Poll `probe` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}

export interface ClusterOptions {
  readonly nodes?: number;
  readonly electionTimeoutMsMin?: number;
  readonly electionTimeoutMsMax?: number;
  readonly heartbeatIntervalMs?: number;
  readonly extraEnv?: Record<string, string>;
  readonly gateway?: boolean;
}

export interface NodeHandle {
  readonly id: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  process: ChildProcess | null;
  output: string[];
}

export class LocalCluster {
  readonly nodes = new Map<number, NodeHandle>();
  gatewayPort = 0;
  private gatewayProcess: ChildProcess | null = null;
  private readonly root: string;
  private readonly clusterNodes: string;

  private constructor(private readonly options: ClusterOptions, ports: { peer: number; http: number }[], gatewayPort: number) {
    this.root = mkdtempSync(join(tmpdir(), 'raft-kv-cluster-'));
    this.clusterNodes = ports.map((p) => `${HOST}:${p.peer}`).join(',');
    ports.forEach((p, i) => this.nodes.set(i + 1, { id: i + 1, peerPort: p.peer, httpPort: p.http, dataDir: join(this.root, `node-${i + 1}`), process: null, output: [] }));
    this.gatewayPort = gatewayPort;
  }

  static async start(options: ClusterOptions = {}): Promise<LocalCluster> {
    const count = options.nodes ?? 3;
    const ports: { peer: number; http: number }[] = [];
    for (let i = 0; i < count; i++) ports.push({ peer: await freePort(), http: await freePort() });
    const cluster = new LocalCluster(options, ports, options.gateway === false ? 0 : await freePort());
    for (const id of cluster.nodes.keys()) cluster.startNode(id);
    if (options.gateway !== false) cluster.startGateway();
    return cluster;
  }

  startNode(id: number): void {
    const handle = this.handle(id);
    const env: Record<string, string> = {
      NODE_ID: String(id),
      CLUSTER_NODES: this.clusterNodes,
      HTTP_ADDR: `${HOST}:${handle.httpPort}`,
      DATA_DIR: handle.dataDir,
      ELECTION_TIMEOUT_MIN: String(this.options.electionTimeoutMsMin ?? 300),
      ELECTION_TIMEOUT_MAX: String(this.options.electionTimeoutMsMax ?? 600),
      HEARTBEAT_INTERVAL: String(this.options.heartbeatIntervalMs ?? 50),
      LOG_LEVEL: 'info',
      ...this.options.extraEnv,
    };
    handle.process = this.spawnLogged(nodeScript, env, handle.output);
  }

  startGateway(): void {
    const output: string[] = [];
    this.gatewayProcess = this.spawnLogged(gatewayScript, { GATEWAY_ADDR: `${HOST}:${this.gatewayPort}`, CLUSTER_NODES: this.clusterNodes, LOG_LEVEL: 'warn' }, output);
  }

  private spawnLogged(script: string, env: Record<string, string>, output: string[]): ChildProcess {
    // Only the settings given here: a developer's .env must not leak into a test cluster.
    const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: this.root });
    const keep = (chunk: Buffer): void => {
      output.push(chunk.toString('utf8'));
      if (output.length > 2000) output.splice(0, output.length - 2000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    return child;
  }

  handle(id: number): NodeHandle {
    const handle = this.nodes.get(id);
    if (!handle) throw new Error(`no node ${id}`);
    return handle;
  }

  /** Send a signal to a node we started, by its PID; SIGKILL waits for the exit. */
  async signal(id: number, signal: NodeJS.Signals): Promise<void> {
    const child = this.handle(id).process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') {
      await exited;
      this.handle(id).process = null;
    }
  }

  async health(port: number): Promise<Record<string, unknown> | undefined> {
    try {
      const answer = await http(port, 'GET', '/health', undefined, 1000);
      return answer.body as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  /** The id of the node that says it leads, once exactly one live node says so. */
  async waitForLeader(timeoutMs = 15_000, among: readonly number[] = [...this.nodes.keys()]): Promise<number> {
    return waitFor('a leader', async () => {
      const states = await Promise.all(among.filter((id) => this.handle(id).process !== null).map(async (id) => ({ id, health: await this.health(this.handle(id).httpPort) })));
      const leaders = states.filter((s) => s.health?.state === 'leader' && s.health.status === 'healthy');
      return leaders.length === 1 ? leaders[0].id : undefined;
    }, timeoutMs);
  }

  async waitForGateway(timeoutMs = 15_000): Promise<void> {
    await waitFor('the gateway to be healthy', async () => ((await this.health(this.gatewayPort))?.status === 'healthy' ? true : undefined), timeoutMs);
  }

  logsOf(id: number): string {
    return this.handle(id).output.join('');
  }

  async stop(): Promise<void> {
    for (const id of this.nodes.keys()) await this.signal(id, 'SIGKILL');
    if (this.gatewayProcess && this.gatewayProcess.exitCode === null) {
      const exited = new Promise<void>((r) => this.gatewayProcess?.once('exit', () => r()));
      this.gatewayProcess.kill('SIGKILL');
      await exited;
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
