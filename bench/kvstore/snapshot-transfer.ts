// Benchmark: how fast a leader streams a snapshot to a new follower, on real processes.
//
//   node dist/bench/kvstore/snapshot-transfer.js [--keys 100000] [--value-bytes 10240] [--root DIR]
//
// A single-node cluster holding N keys is built offline through the storage layer (the restart
// benchmark's builder, bench/tools/build-restart-data.ts), started, and a second node JOINs it with
// an empty data directory. The leader's log was compacted long ago, so the newcomer needs a
// snapshot: the leader streams it from its engine's read view on a connection of its own, and the
// newcomer builds a fresh engine from it, flushes it and swaps it in. Measured, from the nodes' own
// log lines (one machine, one clock):
//   - stream: the receiver's "snapshot installed" line (bytes received, duration from first byte to
//     the installed engine);
//   - end to end: the leader's "sending snapshot" line to the receiver's "snapshot installed" line;
//   - join to caught up: the newcomer's start to its /health answering 200 with the leader's index.
// The default is 100,000 keys of 10 KiB (about 1 GB of values). Timings are for comparison on one
// machine, not pass/fail. Run it under the shared lock: flock /tmp/raft-heavy.lock node ...

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRestartData, freeBytesAt } from '../tools/build-restart-data.js';

const HOST = '127.0.0.1';
const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const nodeScript = join(distRoot, 'src/cmd/raft-node.js');

interface Options {
  readonly keys: number;
  readonly valueBytes: number;
  readonly root: string | null;
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string): string | undefined => {
    const at = argv.indexOf(`--${name}`);
    return at >= 0 ? argv[at + 1] : argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
  };
  return { keys: Number(value('keys') ?? 100_000), valueBytes: Number(value('value-bytes') ?? 10_240), root: value('root') ?? null };
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolveAnswer, reject) => {
    const req = request({ host: HOST, port, path, method: 'GET', agent: false, timeout: 2000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        try {
          resolveAnswer({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A node process whose JSON log lines are kept and can be waited for. */
class NodeProcess {
  readonly lines: Record<string, unknown>[] = [];
  private readonly waiters: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  readonly child: ChildProcess;
  private partial = '';

  constructor(env: Record<string, string>, cwd: string) {
    this.child = spawn(process.execPath, [nodeScript], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd });
    const take = (chunk: Buffer): void => {
      const text = this.partial + chunk.toString('utf8');
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const part of parts) {
        let line: Record<string, unknown>;
        try { line = JSON.parse(part) as Record<string, unknown>; } catch { continue; }
        this.lines.push(line);
        for (const waiter of [...this.waiters]) {
          if (waiter.match(line)) {
            this.waiters.splice(this.waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    };
    this.child.stdout?.on('data', take);
    this.child.stderr?.on('data', take);
  }

  /** The first log line (past or future) that matches, or a rejection after `timeoutMs`. */
  waitForLine(what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolveLine, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.waiters.push({ match, resolve: (line) => { clearTimeout(timer); resolveLine(line); } });
    });
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGKILL');
    await exited;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function directoryBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    total += entry.isDirectory() ? directoryBytes(full) : statSync(full).size;
  }
  return total;
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const root = options.root ?? mkdtempSync(join(tmpdir(), 'bench-snapshot-transfer-'));
  // The leader's log and engine, and the newcomer's engine (plus its temp build), with room to spare.
  const neededBytes = 4 * options.keys * (options.valueBytes + 600) + 512 * 2 ** 20;
  const freeBytes = freeBytesAt(tmpdir());
  if (freeBytes < neededBytes) throw new Error(`not enough free disk: ${mib(freeBytes)} MiB free, want ${mib(neededBytes)} MiB`);
  const processes: NodeProcess[] = [];
  try {
    const ports = [{ peer: await freePort(), http: await freePort() }, { peer: await freePort(), http: await freePort() }];
    process.stderr.write(`building ${options.keys} keys of ${options.valueBytes} bytes in ${root}...\n`);
    const built = await buildRestartData({ root, ports: [ports[0]], keys: options.keys, valueBytes: options.valueBytes, batchEntries: Math.max(1, Math.floor(2 ** 20 / options.valueBytes)) });
    process.stderr.write(`built in ${(built.buildMs / 1000).toFixed(1)} s: log ${mib(built.walBytes)} MiB, state ${mib(built.stateBytes)} MiB\n`);

    const leader = new NodeProcess({ NODE_ID: '1', CLUSTER_NODES: `${HOST}:${ports[0].peer}`, HTTP_ADDR: `${HOST}:${ports[0].http}`, DATA_DIR: join(root, 'node-1') }, root);
    processes.push(leader);
    const leaderHealth = await waitFor('the leader to serve', async () => {
      const answer = await getJson(ports[0].http, '/health');
      return answer.status === 200 && answer.body.state === 'leader' ? answer.body : undefined;
    }, 120_000);

    const joinStartedMs = Date.now();
    const newcomer = new NodeProcess({ NODE_ID: '2', NODE_ADDR: `${HOST}:${ports[1].peer}`, HTTP_ADDR: `${HOST}:${ports[1].http}`, DATA_DIR: join(root, 'node-2'), JOIN: `${HOST}:${ports[0].http}` }, root);
    processes.push(newcomer);
    const sending = await leader.waitForLine('the leader to send a snapshot', (line) => line.msg === 'sending snapshot', 120_000);
    const received = await newcomer.waitForLine('the newcomer to install the snapshot', (line) => line.msg === 'snapshot installed' && typeof line.bytes === 'number', 1_800_000);
    const targetIndex = Number(leaderHealth.appliedIndex);
    await waitFor('the newcomer to catch up', async () => {
      const answer = await getJson(ports[1].http, '/health');
      return answer.status === 200 && Number(answer.body.appliedIndex) >= targetIndex ? true : undefined;
    }, 300_000);
    const caughtUpMs = Date.now() - joinStartedMs;

    const streamBytes = Number(received.bytes);
    const streamMs = Number(received.durationMs);
    const endToEndMs = Date.parse(String(received.time)) - Date.parse(String(sending.time));
    const valueBytes = options.keys * options.valueBytes;
    const result = {
      keys: options.keys, valueBytes: options.valueBytes, valuesMiB: Number(mib(valueBytes)),
      leaderStateMiB: Number(mib(built.stateBytes)), newcomerStateMiB: Number(mib(directoryBytes(join(root, 'node-2', 'kv')))),
      snapshotStreamMiB: Number(mib(streamBytes)), streamMs, streamMiBPerSecond: Number((streamBytes / 2 ** 20 / (streamMs / 1000)).toFixed(1)),
      endToEndMs, valuesMiBPerSecondEndToEnd: Number((valueBytes / 2 ** 20 / (endToEndMs / 1000)).toFixed(1)),
      joinToCaughtUpMs: caughtUpMs,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.stdout.write(`snapshot transfer: ${result.snapshotStreamMiB} MiB streamed in ${(streamMs / 1000).toFixed(1)} s (${result.streamMiBPerSecond} MiB/s; ${result.valuesMiB} MiB of values); leader's send to installed: ${(endToEndMs / 1000).toFixed(1)} s; join to caught up: ${(caughtUpMs / 1000).toFixed(1)} s\n`);
  } finally {
    for (const node of processes) await node.kill();
    if (options.root === null) rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: Error) => {
  process.stderr.write(`snapshot-transfer: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
