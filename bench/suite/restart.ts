// Restart with a large state: the data directories of a 3-node cluster holding N keys are built
// offline (bench/tools/build-restart-data.ts, through the storage layer), then
//   1. cold start of all three nodes: time from spawn to each node's first /health 200, and to the
//      first successful write (through node 1);
//   2. restart of one follower (SIGKILL, then start) while the other two serve: time from its spawn to
//      its /health 200 and to a write through it;
// with each node's memory (peak and current RSS, JS heap through the heap probe) after each step.

import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { remainingMs, type SuiteContext } from './context.js';
import { httpOnce, jsonOnce } from './http-once.js';
import { allocatePorts, OurCluster } from './ours.js';
import { distPath } from './paths.js';
import { monotonicMs, removeTempDirectory, sleep, spawnTracked } from './processes.js';
import type { MemberMemory } from './system.js';
import { estimatedBytes, freeBytesAt, type RestartDataResult } from '../tools/build-restart-data.js';

const POLL_MS = 20;
const SERVE_TIME_BOUND_MS = 180_000;

export interface ServeTiming {
  /** Spawn to the first /health 200, per node id. */
  readonly healthyMsByNode: Record<string, number | null>;
  /** Spawn to the first successful write. */
  readonly firstWriteMs: number | null;
  readonly keysReported: number | null;
}

export interface RestartRecord {
  readonly keys: number;
  readonly valueBytes: number;
  readonly build: RestartDataResult;
  readonly coldStart: ServeTiming;
  readonly coldStartMemory: readonly MemberMemory[];
  readonly followerRestart: ServeTiming & { readonly nodeId: number };
  readonly followerRestartMemory: readonly MemberMemory[];
}

export type RestartOutcome = RestartRecord | { readonly skipped: string };

export async function runRestart(context: SuiteContext): Promise<RestartOutcome> {
  const { options } = context;
  const keys = options.restartKeys;
  const valueBytes = 100;
  const root = join(context.root, 'restart');
  const neededBytes = estimatedBytes(keys, valueBytes);
  const freeBytes = freeBytesAt(context.root);
  if (freeBytes < 2 * neededBytes) {
    return { skipped: `not enough free disk: ${(freeBytes / 2 ** 30).toFixed(1)} GiB free under ${context.root}, ${(2 * neededBytes / 2 ** 30).toFixed(1)} GiB wanted for ${keys} keys on 3 nodes` };
  }
  // Building takes about 40 µs a key here; leave room for it and two starts.
  if (remainingMs(context) < keys * 0.06 + 20_000) return { skipped: 'time limit' };
  const ports = await allocatePorts(3);
  context.progress.set(`restart: building 3 data directories of ${keys.toLocaleString('en-US')} keys through the storage layer`);
  const build = await buildData(root, ports.map((p) => `${p.peer}:${p.http}`).join(','), keys, valueBytes);
  const cluster = await OurCluster.create({ root, ports });
  try {
    context.progress.set(`restart: cold start of 3 nodes holding ${keys.toLocaleString('en-US')} keys`);
    const coldSpawnMs = monotonicMs();
    for (const member of cluster.members()) cluster.startMember(member.id);
    const coldStart = await timeToServe(cluster, cluster.members().map((m) => m.id), 1, coldSpawnMs);
    const leader = await cluster.leader(10_000);
    const coldStartMemory = await cluster.memory(leader.id);

    const follower = cluster.members().find((m) => m.id !== leader.id);
    if (follower === undefined) throw new Error('no follower');
    context.progress.set(`restart: SIGKILL and restart of follower ${follower.id}`);
    await cluster.killMember(follower.id, 'SIGKILL');
    // Let the cluster notice, as it would after a real crash.
    await sleep(500);
    const followerSpawnMs = monotonicMs();
    cluster.startMember(follower.id);
    const followerTiming = await timeToServe(cluster, [follower.id], follower.id, followerSpawnMs);
    const followerRestartMemory = await cluster.memory((await cluster.leader(10_000)).id);
    return { keys, valueBytes, build, coldStart, coldStartMemory, followerRestart: { ...followerTiming, nodeId: follower.id }, followerRestartMemory };
  } finally {
    await cluster.stop((await cluster.leader(2000).catch(() => null))?.id ?? 0);
    if (!options.keepData) removeTempDirectory(root);
  }
}

function buildData(root: string, ports: string, keys: number, valueBytes: number): Promise<RestartDataResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked('build-restart-data', process.execPath, [distPath('bench/tools/build-restart-data.js'), '--root', root, '--ports', ports, '--keys', String(keys), '--value-bytes', String(valueBytes), '--json'], {
      env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const errors: string[] = [];
    let result: RestartDataResult | null = null;
    child.stderr?.on('data', (chunk: Buffer) => { errors.push(chunk.toString('utf8')); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try { result = JSON.parse(line) as RestartDataResult; } catch { /* not the result line */ }
    });
    child.once('exit', (code) => {
      if (code === 0 && result !== null) resolve(result);
      else reject(new Error(`building the restart data failed (exit ${code}): ${errors.join('').slice(-600)}`));
    });
  });
}

/** Polls the nodes' /health until each answers 200 and, once `writeVia` is healthy, writes through
 * it until a write succeeds; every time from `spawnMs`. */
async function timeToServe(cluster: OurCluster, nodeIds: readonly number[], writeVia: number, spawnMs: number): Promise<ServeTiming> {
  const healthy: Record<string, number | null> = Object.fromEntries(nodeIds.map((id) => [String(id), null]));
  const portOf = (id: number): number => cluster.members().find((m) => m.id === id)?.apiPort ?? 0;
  let keysReported: number | null = null;
  const deadline = spawnMs + SERVE_TIME_BOUND_MS;
  const pollHealth = async (): Promise<void> => {
    while (monotonicMs() < deadline && Object.values(healthy).some((v) => v === null)) {
      await Promise.all(nodeIds.filter((id) => healthy[String(id)] === null).map(async (id) => {
        const answer = await jsonOnce(portOf(id), 'GET', '/health', undefined, 1000);
        if (answer?.status === 200) {
          healthy[String(id)] = monotonicMs() - spawnMs;
          keysReported ??= Number(answer.body.keys);
        }
      }));
      await sleep(POLL_MS);
    }
  };
  const firstWrite = async (): Promise<number | null> => {
    while (monotonicMs() < deadline) {
      if (healthy[String(writeVia)] !== null) {
        const answer = await httpOnce(portOf(writeVia), 'PUT', '/kv/bench-restart-probe', JSON.stringify({ value: 'x' }), 5000).catch(() => null);
        if (answer?.status === 200) return monotonicMs() - spawnMs;
      }
      await sleep(POLL_MS);
    }
    return null;
  };
  const [, firstWriteMs] = await Promise.all([pollHealth(), firstWrite()]);
  return { healthyMsByNode: healthy, firstWriteMs, keysReported };
}
