// A batch commit of the state machine's engine that fails on its timer (a failed flush: the page
// cache can no longer be trusted) stops the node at once, as a failed WAL fsync does: the runtime
// reports it as fatal and answers no further writes. A one-node cluster over an in-memory log and
// a real state machine whose batch commit the test makes fail.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { failBatchCommits, tempDir } from '../kvstore/helpers.js';
import { oneNodeRuntime, until } from './one-node-runtime.js';

const inMemoryWal = {
  save: () => Promise.resolve(),
  compact: () => Promise.resolve(),
  stats: () => ({ segments: 1, bytes: 0, firstIndex: 1, lastIndex: 0 }),
};

test('an engine batch commit failing on its timer stops the node and refuses further writes', async (t) => {
  const dir = tempDir('engine-failure-');
  const kv = await KvStateMachine.open(`${dir.path}/kv`, { commitIntervalMs: 20 });
  let reportFatal: (error: Error) => void = () => {};
  const fatal = new Promise<Error>((resolve) => { reportFatal = resolve; });
  const runtime = oneNodeRuntime({ dataDir: dir.path, kv, wal: inMemoryWal, onFatal: (error) => reportFatal(error) });
  t.after(async () => {
    await runtime.stop();
    await kv.close().catch(() => {});
    dir.remove();
  });
  runtime.start();
  await until('leadership', () => runtime.status().state === 'leader');
  const written = await runtime.propose({ v: 1, op: 'put', key: 'a', value: '1', proposedAtMs: 1 }, 5000);
  assert.equal(written.kind, 'put', 'writes work before the failure');

  failBatchCommits(kv);
  // This write's apply opens a batch; its timer's commit fails.
  await runtime.propose({ v: 1, op: 'put', key: 'b', value: '2', proposedAtMs: 1 }, 5000).catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const error = await Promise.race([fatal, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the failure was not reported as fatal within 10 s')), 10_000); })]);
  clearTimeout(timer);
  assert.match(error.message, /engine failed to commit/);
  assert.match(String((error.cause as Error | undefined)?.message), /injected: fdatasync failed/);
  await assert.rejects(runtime.propose({ v: 1, op: 'put', key: 'c', value: '3', proposedAtMs: 1 }, 1000), 'a stopped node takes no writes');
});
