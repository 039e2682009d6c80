// Builds, offline, the data directories of a 3-node cluster whose state holds N keys, for the restart
// benchmark: written through the storage layer the node itself uses (RaftLogStore for the log,
// KvStateMachine for the state, openDataDir for the lock and identity), not through the API, so a
// million keys take a minute instead of many. The result is what the nodes would hold after a leader
// (node 1, term 1) committed a no-op and N puts of distinct keys and every node applied them:
//   - the log: the founding membership at index 0, then entries in batches of `batchEntries` (one
//     save, one fdatasync each), with a snapshot point recorded and older segments compacted every
//     SNAPSHOT_EVERY_ENTRIES entries, keeping SNAPSHOT_KEEP_TAIL_ENTRIES, as the runtime does;
//   - the state machine: every entry applied, made durable at each snapshot point and at the end;
//   - the identity: the cluster id the settings compute (the product's own loadNodeConfig), per node.
// Node 1's directory is built and then copied for nodes 2 and 3 (the files are identical but for the
// identity, which is then written per node).
//
//   node dist/bench/tools/build-restart-data.js --root DIR --ports PEER:HTTP,PEER:HTTP,PEER:HTTP
//        [--keys 1000000] [--value-bytes 100] [--batch 1000] [--json]
//
// The ports are recorded in the membership: start the nodes on the same ones (bench/suite/restart.ts).

import { cpSync, mkdirSync, readdirSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, silentLogger } from '../../src/common/logger.js';
import { encodeCommand } from '../../src/kvstore/commands.js';
import { KvStateMachine } from '../../src/kvstore/state-machine.js';
import type { Entry, HardState, Membership, SnapshotMeta } from '../../src/raft/types.js';
import { loadNodeConfig, NODE_DEFAULTS } from '../../src/server/node-config.js';
import { foundingMembership } from '../../src/server/node-process.js';
import { openDataDir } from '../../src/storage/data-dir.js';
import { RaftLogStore } from '../../src/storage/wal.js';
import { keyName, valueOfSize } from '../suite/requests.js';

export interface NodePortsSpec {
  readonly peer: number;
  readonly http: number;
}

export interface RestartDataSpec {
  readonly root: string;
  readonly ports: readonly NodePortsSpec[];
  readonly keys: number;
  readonly valueBytes: number;
  readonly batchEntries?: number;
  readonly onProgress?: (appliedKeys: number) => void;
}

export interface RestartDataResult {
  readonly keys: number;
  readonly lastIndex: number;
  readonly buildMs: number;
  readonly copyMs: number;
  /** Bytes in one node's data directory. */
  readonly nodeDirectoryBytes: number;
  readonly walBytes: number;
  readonly stateBytes: number;
}

const TERM = 1;
const LEADER_ID = 1;
/** Stamped into every command as the leader's clock would be; any fixed base will do. */
const PROPOSED_AT_BASE_MS = 1_700_000_000_000;

/** A rough upper bound of the disk a node directory of `keys` keys takes (value, key, history,
 * log tail), with room to spare; times three nodes. */
export function estimatedBytes(keys: number, valueBytes: number): number {
  return 3 * keys * (valueBytes * 3 + 600) + 512 * 1024 * 1024;
}

export function freeBytesAt(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

function directoryBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    total += entry.isDirectory() ? directoryBytes(full) : statSync(full).size;
  }
  return total;
}

function nodeConfigFor(spec: RestartDataSpec, nodeId: number) {
  const clusterNodes = spec.ports.map((p) => `127.0.0.1:${p.peer}`).join(',');
  return loadNodeConfig({
    NODE_ID: String(nodeId), CLUSTER_NODES: clusterNodes, HTTP_ADDR: `127.0.0.1:${spec.ports[nodeId - 1].http}`, DATA_DIR: join(spec.root, `node-${nodeId}`),
  }, spec.root);
}

export async function buildRestartData(spec: RestartDataSpec): Promise<RestartDataResult> {
  if (!Number.isSafeInteger(spec.keys) || spec.keys < 1) throw new Error(`--keys must be a positive integer, not ${spec.keys}`);
  const batchEntries = spec.batchEntries ?? 1000;
  const startedMs = performance.now();
  const config = nodeConfigFor(spec, 1);
  const membership: Membership = foundingMembership(config);
  mkdirSync(spec.root, { recursive: true });
  const logger = createLogger('warn');
  const dataDir = await openDataDir(config.dataDir, logger);
  const { store: wal } = await RaftLogStore.open(join(config.dataDir, 'wal'), { logger });
  const kv = await KvStateMachine.open(join(config.dataDir, 'kv'), { logger: silentLogger });
  let lastIndex = 0;
  try {
    if (kv.appliedIndex !== 0) throw new Error(`${config.dataDir} already holds data: build into an empty directory`);
    await wal.compact({ index: 0, term: 0, membership }, 0);
    await dataDir.writeIdentity({ clusterId: config.clusterId, nodeId: 1, createdAt: new Date().toISOString() });
    const value = valueOfSize(spec.valueBytes);
    let snapshotIndex = 0;
    let nextKey = 0;
    // Index 1 is the leader's no-op of term 1; the puts follow.
    let pending: Entry[] = [{ kind: 'noop', term: TERM, index: 1 }];
    lastIndex = 1;
    while (nextKey < spec.keys || pending.length > 0) {
      while (pending.length < batchEntries && nextKey < spec.keys) {
        lastIndex += 1;
        pending.push({ kind: 'command', term: TERM, index: lastIndex, data: encodeCommand({ v: 1, op: 'put', key: keyName(nextKey), value, proposedAtMs: PROPOSED_AT_BASE_MS + lastIndex }) });
        nextKey += 1;
      }
      const hardState: HardState = { term: TERM, votedFor: LEADER_ID, commitIndex: lastIndex };
      await wal.save({ hardState, entries: pending, snapshot: null });
      kv.apply(pending);
      pending = [];
      if (kv.appliedIndex - snapshotIndex >= NODE_DEFAULTS.SNAPSHOT_EVERY_ENTRIES) {
        snapshotIndex = await snapshotPoint(kv, wal, membership);
      }
      spec.onProgress?.(nextKey);
    }
    await snapshotPoint(kv, wal, membership);
  } finally {
    await wal.close();
    await kv.close();
    await dataDir.release();
  }
  const buildMs = performance.now() - startedMs;
  const copyStartedMs = performance.now();
  for (let id = 2; id <= spec.ports.length; id++) {
    const other = nodeConfigFor(spec, id);
    cpSync(config.dataDir, other.dataDir, { recursive: true, filter: (source) => !/[/\\](LOCK|identity)$/.test(source) });
    const otherDir = await openDataDir(other.dataDir, logger);
    try {
      await otherDir.writeIdentity({ clusterId: other.clusterId, nodeId: id, createdAt: new Date().toISOString() });
    } finally {
      await otherDir.release();
    }
  }
  return {
    keys: spec.keys, lastIndex, buildMs, copyMs: performance.now() - copyStartedMs,
    nodeDirectoryBytes: directoryBytes(config.dataDir), walBytes: directoryBytes(join(config.dataDir, 'wal')), stateBytes: directoryBytes(join(config.dataDir, 'kv')),
  };
}

/** As the runtime's maybeCompact: make the engine durable, record the snapshot point, drop the log
 * before it but for the tail kept for slow followers. */
async function snapshotPoint(kv: KvStateMachine, wal: RaftLogStore, membership: Membership): Promise<number> {
  await kv.sync();
  const meta: SnapshotMeta = { index: kv.appliedIndex, term: TERM, membership };
  await wal.compact(meta, Math.max(0, meta.index - NODE_DEFAULTS.SNAPSHOT_KEEP_TAIL_ENTRIES));
  return meta.index;
}

function parseArguments(argv: readonly string[]): { spec: RestartDataSpec; json: boolean } {
  let root = '';
  let ports: NodePortsSpec[] = [];
  let keys = 1_000_000;
  let valueBytes = 100;
  let batchEntries = 1000;
  let json = false;
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    const next = (): string => {
      const value = argv[++k];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      return value;
    };
    if (flag === '--root') root = next();
    else if (flag === '--ports') ports = next().split(',').map((pair) => { const [peer, http] = pair.split(':').map(Number); return { peer, http }; });
    else if (flag === '--keys') keys = Number(next());
    else if (flag === '--value-bytes') valueBytes = Number(next());
    else if (flag === '--batch') batchEntries = Number(next());
    else if (flag === '--json') json = true;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (root === '' || ports.length < 1 || ports.some((p) => !(p.peer > 0 && p.http > 0))) throw new Error('usage: --root DIR --ports PEER:HTTP,PEER:HTTP,PEER:HTTP [--keys N] [--value-bytes N] [--batch N] [--json]');
  return { spec: { root, ports, keys, valueBytes, batchEntries }, json };
}

async function main(): Promise<void> {
  const { spec, json } = parseArguments(process.argv.slice(2));
  mkdirSync(spec.root, { recursive: true });
  const needed = estimatedBytes(spec.keys, spec.valueBytes);
  const free = freeBytesAt(spec.root);
  if (free < needed * 2) throw new Error(`not enough free disk at ${spec.root}: ${(free / 2 ** 30).toFixed(1)} GiB free, want at least ${(needed * 2 / 2 ** 30).toFixed(1)} GiB`);
  let lastReportMs = 0;
  const result = await buildRestartData({
    ...spec,
    onProgress: (applied) => {
      const nowMs = performance.now();
      if (nowMs - lastReportMs < 2000) return;
      lastReportMs = nowMs;
      process.stderr.write(`build-restart-data: ${applied.toLocaleString('en-US')} / ${spec.keys.toLocaleString('en-US')} keys\n`);
    },
  });
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`built ${result.keys} keys (last index ${result.lastIndex}) in ${(result.buildMs / 1000).toFixed(1)} s, copied in ${(result.copyMs / 1000).toFixed(1)} s; one node: ${(result.nodeDirectoryBytes / 2 ** 20).toFixed(0)} MiB (log ${(result.walBytes / 2 ** 20).toFixed(0)} MiB, state ${(result.stateBytes / 2 ** 20).toFixed(0)} MiB)\n`);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((error: Error) => {
    process.stderr.write(`build-restart-data: ${error.message}\n`);
    process.exit(1);
  });
}
