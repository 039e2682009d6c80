// A batch commit of the state machine's engine that fails on its timer (a failed flush: the page
// cache can no longer be trusted) stops the node at once, as a failed WAL fsync does: the runtime
// reports it as fatal and answers no further writes. A one-node cluster over an in-memory log and
// a real state machine whose batch commit the test makes fail.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/logger.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { loadNodeConfig } from '../../../src/server/node-config.js';
import { RaftRuntime } from '../../../src/server/raft-runtime.js';
import type { RaftLogStore } from '../../../src/storage/wal.js';
import type { PeerTransport } from '../../../src/transport/peer-transport.js';
import { tempDir } from '../kvstore/helpers.js';

const inMemoryWal = {
  save: () => Promise.resolve(),
  compact: () => Promise.resolve(),
  stats: () => ({ segments: 1, bytes: 0, firstIndex: 1, lastIndex: 0 }),
};

test('an engine batch commit failing on its timer stops the node and refuses further writes', async (t) => {
  const dir = tempDir('engine-failure-');
  const kv = await KvStateMachine.open(`${dir.path}/kv`, { commitIntervalMs: 20 });
  const config = loadNodeConfig({ NODE_ID: '1', CLUSTER_NODES: '1=127.0.0.1:1', DATA_DIR: dir.path, HTTP_ADDR: '127.0.0.1:2' }, dir.path);
  const membership = { members: [{ id: 1, role: 'voter' as const, peerAddr: '127.0.0.1:1', httpAddr: '' }] };
  const transport = { send: () => {}, sendSnapshot: async () => false } as unknown as PeerTransport;
  let reportFatal: (error: Error) => void = () => {};
  const fatal = new Promise<Error>((resolve) => { reportFatal = resolve; });
  const runtime = new RaftRuntime({
    config, logger: silentLogger, wal: inMemoryWal as unknown as RaftLogStore, kv, transport,
    initial: { hardState: { term: 0, votedFor: 0, commitIndex: 0 }, snapshot: { index: 0, term: 0, membership }, entries: [], appliedIndex: 0 },
    appliedMembership: membership,
    onFatal: (error) => reportFatal(error),
  });
  t.after(async () => {
    await runtime.stop();
    await kv.close().catch(() => {});
    dir.remove();
  });
  runtime.start();
  const deadline = Date.now() + 5000;
  while (runtime.status().state !== 'leader') {
    assert.ok(Date.now() < deadline, 'no leadership within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const written = await runtime.propose({ v: 1, op: 'put', key: 'a', value: '1', proposedAtMs: 1 }, 5000);
  assert.equal(written.kind, 'put', 'writes work before the failure');

  // Stand-in for a failed flush (lmdb-js gives no way to make a real commit fail on demand).
  const engine = (kv as unknown as { engine: { commitBatch: () => void; failed: Error | null } }).engine;
  engine.commitBatch = () => {
    const error = new Error('injected: fdatasync failed');
    engine.failed ??= error;
    throw error;
  };
  // This write's apply opens a batch; its timer's commit fails.
  await runtime.propose({ v: 1, op: 'put', key: 'b', value: '2', proposedAtMs: 1 }, 5000).catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const error = await Promise.race([fatal, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the failure was not reported as fatal within 10 s')), 10_000); })]);
  clearTimeout(timer);
  assert.match(error.message, /engine failed to commit/);
  assert.match(String((error.cause as Error | undefined)?.message), /injected: fdatasync failed/);
  await assert.rejects(runtime.propose({ v: 1, op: 'put', key: 'c', value: '3', proposedAtMs: 1 }, 1000), 'a stopped node takes no writes');
});
