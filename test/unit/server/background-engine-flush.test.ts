// A snapshot point (every SNAPSHOT_EVERY_ENTRIES) needs the engine flushed before the log may drop
// entries. The flush runs in the background: the Ready loop keeps writing, replicating and
// answering while it is in flight, and the log is compacted only after it finished, to the index
// that was applied when it started. A one-node cluster over an in-memory log and a real state
// machine whose sync() the test releases by hand.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotMeta } from '../../../src/raft/types.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { tempDir } from '../kvstore/helpers.js';
import { oneNodeRuntime, until } from './one-node-runtime.js';

/** Saves succeed at once; compactions are recorded. */
class RecordingWal {
  readonly compactions: { readonly meta: SnapshotMeta; readonly compactTo: number }[] = [];
  save(): Promise<void> { return Promise.resolve(); }
  compact(meta: SnapshotMeta, compactTo: number): Promise<void> {
    this.compactions.push({ meta, compactTo });
    return Promise.resolve();
  }
  stats(): { segments: number; bytes: number; firstIndex: number; lastIndex: number } {
    return { segments: 1, bytes: 0, firstIndex: 1, lastIndex: 0 };
  }
}

test('the engine flush of a snapshot point does not hold the Ready loop; the log is compacted after it, to where it started', async (t) => {
  const dir = tempDir('background-engine-flush-');
  const kv = await KvStateMachine.open(`${dir.path}/kv`, { unsafeNoSync: true });
  const wal = new RecordingWal();
  const fatal: Error[] = [];
  const runtime = oneNodeRuntime({
    dataDir: dir.path, kv, wal, settings: { SNAPSHOT_EVERY_ENTRIES: '5', SNAPSHOT_KEEP_TAIL_ENTRIES: '0' },
    onFatal: (error) => fatal.push(error),
  });
  // sync() waits for the test; what was applied when it was called is what it makes durable.
  const syncs: { readonly appliedAtCall: number; readonly release: () => void }[] = [];
  const realSync = kv.sync.bind(kv);
  kv.sync = () => new Promise<void>((resolve, reject) => {
    syncs.push({ appliedAtCall: kv.appliedIndex, release: () => { realSync().then(resolve, reject); } });
  });
  t.after(async () => {
    for (const sync of syncs) sync.release();
    await runtime.stop();
    await kv.close();
    dir.remove();
  });
  runtime.start();
  await until('leadership', () => runtime.status().state === 'leader');
  let n = 0;
  const put = () => runtime.propose({ v: 1, op: 'put', key: `k${n}`, value: `v${n++}`, proposedAtMs: 1 }, 5000);
  while (syncs.length === 0) await put();
  const flushedUpTo = syncs[0].appliedAtCall;
  assert.ok(flushedUpTo >= 5, `the flush started at applied index ${flushedUpTo}`);

  // While the flush is in flight: writes still commit and are answered; no second flush starts.
  for (let i = 0; i < 10; i++) assert.equal((await put()).kind, 'put');
  assert.ok(kv.appliedIndex >= flushedUpTo + 10);
  assert.equal(syncs.length, 1, 'one flush at a time');
  assert.equal(wal.compactions.length, 0, 'nothing is compacted before the flush finished');

  syncs[0].release();
  await until('the log compaction after the flush', () => wal.compactions.length > 0);
  assert.equal(wal.compactions[0].meta.index, flushedUpTo, 'compacted to the index applied when the flush started, not beyond');
  assert.ok(wal.compactions[0].compactTo <= flushedUpTo);
  // The next snapshot point starts a new flush.
  await put();
  await until('the next flush', () => syncs.length === 2);
  assert.deepEqual(fatal, []);
});
