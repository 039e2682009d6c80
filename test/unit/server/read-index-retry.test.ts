// A follower's ReadIndex request that is lost on the way is asked again (read-retry.ts), and the
// read is served once an answer arrives, well within its deadline. Node 1 of three, driven by
// hand: the test plays leader 2 and a transport that drops the first question.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/logger.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Message } from '../../../src/raft/types.js';
import { loadNodeConfig } from '../../../src/server/node-config.js';
import { RaftRuntime } from '../../../src/server/raft-runtime.js';
import { READ_INDEX_RETRY_MS } from '../../../src/server/read-retry.js';
import type { RaftLogStore } from '../../../src/storage/wal.js';
import type { PeerTransport } from '../../../src/transport/peer-transport.js';
import { LogBuilder, tempDir } from '../kvstore/helpers.js';
import { until } from './one-node-runtime.js';

test('a lost ReadIndex request is asked again after the retry interval, and the read is served', async (t) => {
  const dir = tempDir('read-index-retry-');
  const kv = await KvStateMachine.open(`${dir.path}/kv`, { unsafeNoSync: true });
  const sent: Message[] = [];
  const transport = { send: (messages: readonly Message[]) => { sent.push(...messages); }, sendSnapshot: async () => false } as unknown as PeerTransport;
  const wal = { save: () => Promise.resolve(), compact: () => Promise.resolve(), stats: () => ({ segments: 1, bytes: 0, firstIndex: 1, lastIndex: 0 }) };
  const config = loadNodeConfig({ NODE_ID: '1', CLUSTER_NODES: '1=127.0.0.1:1,2=127.0.0.1:3,3=127.0.0.1:5', DATA_DIR: dir.path, HTTP_ADDR: '127.0.0.1:2' }, dir.path);
  const membership = { members: [1, 2, 3].map((id) => ({ id, role: 'voter' as const, peerAddr: `127.0.0.1:${2 * id - 1}`, httpAddr: '' })) };
  const fatal: Error[] = [];
  const runtime = new RaftRuntime({
    config, logger: silentLogger, wal: wal as unknown as RaftLogStore, kv, transport,
    initial: { hardState: { term: 0, votedFor: 0, commitIndex: 0 }, snapshot: { index: 0, term: 0, membership }, entries: [], appliedIndex: 0 },
    appliedMembership: membership,
    onFatal: (error) => fatal.push(error),
  });
  // Leader 2 keeps node 1 a follower with heartbeats, as a live leader would.
  const heartbeats = setInterval(() => runtime.onMessage({ type: 'heartbeatRequest', from: 2, to: 1, term: 1, commitIndex: 1, context: 0 }), 20);
  t.after(async () => {
    clearInterval(heartbeats);
    await runtime.stop();
    await kv.close();
    dir.remove();
  });
  runtime.start();
  // One committed entry, so that a read index of 1 is something node 1 has applied.
  runtime.onMessage({ type: 'appendRequest', from: 2, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [new LogBuilder().noop()], leaderCommit: 1 });
  await until('the entry applied', () => kv.appliedIndex === 1);

  const startedMs = performance.now();
  let served = false;
  const read = runtime.linearizableBarrier(5000).then(() => { served = true; });
  const questions = (): Message[] => sent.filter((message) => message.type === 'readIndexRequest');
  await until('the first question', () => questions().length === 1);
  // The first question is lost: no answer. The runtime asks again after the retry interval.
  await until('the question asked again', () => questions().length === 2, 3 * READ_INDEX_RETRY_MS);
  const elapsedMs = performance.now() - startedMs;
  assert.ok(elapsedMs >= READ_INDEX_RETRY_MS - 20, `not asked again before the interval (${elapsedMs.toFixed(0)} ms)`);
  const [first, second] = questions();
  assert.ok(first.type === 'readIndexRequest' && second.type === 'readIndexRequest');
  assert.equal(second.context, first.context, 'the same read');
  assert.equal(second.to, 2, 'asked of the leader');
  assert.equal(served, false, 'not served without an answer');
  runtime.onMessage({ type: 'readIndexResponse', from: 2, to: 1, term: 1, context: second.context, readIndex: 1 });
  await read;
  assert.ok(performance.now() - startedMs < 5000, 'served within its deadline');
  assert.deepEqual(fatal, []);
});
