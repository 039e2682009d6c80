// A one-node cluster's RaftRuntime over a stand-in log, a real state machine and a transport that
// sends nowhere: for tests of the runtime's own rules (what it persists, applies and compacts when).

import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/logger.js';
import type { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { loadNodeConfig } from '../../../src/server/node-config.js';
import { RaftRuntime } from '../../../src/server/raft-runtime.js';
import type { RaftLogStore } from '../../../src/storage/wal.js';
import type { PeerTransport } from '../../../src/transport/peer-transport.js';

export interface OneNodeRuntimeOptions {
  readonly dataDir: string;
  readonly kv: KvStateMachine;
  /** Whatever part of RaftLogStore the test's log stand-in provides. */
  readonly wal: unknown;
  /** Extra settings, as in the environment (SNAPSHOT_EVERY_ENTRIES, ...). */
  readonly settings?: Readonly<Record<string, string>>;
  readonly onFatal: (error: Error) => void;
}

export function oneNodeRuntime(options: OneNodeRuntimeOptions): RaftRuntime {
  const config = loadNodeConfig({ NODE_ID: '1', CLUSTER_NODES: '1=127.0.0.1:1', DATA_DIR: options.dataDir, HTTP_ADDR: '127.0.0.1:2', ...options.settings }, options.dataDir);
  const membership = { members: [{ id: 1, role: 'voter' as const, peerAddr: '127.0.0.1:1', httpAddr: '' }] };
  const transport = { send: () => {}, sendSnapshot: async () => false } as unknown as PeerTransport;
  return new RaftRuntime({
    config, logger: silentLogger, wal: options.wal as RaftLogStore, kv: options.kv, transport,
    initial: { hardState: { term: 0, votedFor: 0, commitIndex: 0 }, snapshot: { index: 0, term: 0, membership }, entries: [], appliedIndex: 0 },
    appliedMembership: membership,
    onFatal: options.onFatal,
  });
}

/** Polls `condition` every millisecond until it holds; fails the test after `deadlineMs`. */
export async function until(what: string, condition: () => boolean, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
