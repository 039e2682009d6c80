// The Ready loop applies committed entries that are already on disk while the Ready's own write
// (a new commit index, new entries) is still being fsynced, and never applies an entry before the
// write that stores it has finished; a write that only moves the commit index skips its fsync. A one-node cluster over a write-ahead log whose saves the test
// releases by hand, and a real state machine.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, Index } from '../../../src/raft/types.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { durablePrefixLength } from '../../../src/server/raft-runtime.js';
import type { SaveBatch } from '../../../src/storage/wal.js';
import { tempDir } from '../kvstore/helpers.js';
import { oneNodeRuntime } from './one-node-runtime.js';

/** A log whose save() resolves only when the test releases it; it records what happened when. */
class GatedWal {
  readonly events: string[] = [];
  private readonly pending: { readonly batch: SaveBatch; readonly sync: boolean; readonly release: () => void }[] = [];
  private readonly waiters = new Set<() => void>();

  save(batch: SaveBatch, options: { readonly sync?: boolean } = {}): Promise<void> {
    const what = [batch.entries.length > 0 ? `entries ${batch.entries[0].index}..${batch.entries[batch.entries.length - 1].index}` : '', batch.hardState !== null ? `commit ${batch.hardState.commitIndex}` : ''].filter((s) => s !== '').join(', ');
    this.events.push(`save start: ${what}`);
    return new Promise((resolve) => {
      this.pending.push({ batch, sync: options.sync ?? true, release: () => { this.events.push(`save done: ${what}`); resolve(); } });
      for (const waiter of [...this.waiters]) waiter();
    });
  }

  compact(): Promise<void> {
    return Promise.resolve();
  }

  stats(): { segments: number; bytes: number; firstIndex: number; lastIndex: number } {
    return { segments: 1, bytes: 0, firstIndex: 1, lastIndex: 0 };
  }

  /** Waits (with a deadline) until a save is pending, then returns it unreleased. */
  async nextSave(deadlineMs = 5000): Promise<{ readonly batch: SaveBatch; readonly sync: boolean; readonly release: () => void }> {
    const deadline = Date.now() + deadlineMs;
    while (this.pending.length === 0) {
      const left = deadline - Date.now();
      assert.ok(left > 0, `no save came: ${this.events.join(' | ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void { clearTimeout(timer); resolve(); }
        this.waiters.add(done);
      });
    }
    return this.pending.shift()!;
  }
}

test('durablePrefixLength: committed entries below the first entry being written', () => {
  const entry = (index: Index): Entry => ({ kind: 'noop', term: 1, index });
  assert.equal(durablePrefixLength([entry(3), entry(4)], []), 2);
  assert.equal(durablePrefixLength([entry(3), entry(4), entry(5)], [entry(5), entry(6)]), 2);
  assert.equal(durablePrefixLength([entry(5)], [entry(5)]), 0);
  assert.equal(durablePrefixLength([], [entry(1)]), 0);
});

test('committed entries on disk are applied while the commit index is being written, not before their own write', async (t) => {
  const dir = tempDir('apply-while-persisting-');
  const kv = await KvStateMachine.open(`${dir.path}/kv`, { unsafeNoSync: true });
  const wal = new GatedWal();
  const fatal: Error[] = [];
  const runtime = oneNodeRuntime({ dataDir: dir.path, kv, wal, onFatal: (error) => fatal.push(error) });
  t.after(async () => {
    await runtime.stop();
    await kv.close();
    dir.remove();
  });
  const originalApply = kv.apply.bind(kv);
  kv.apply = (entries) => {
    wal.events.push(`apply ${entries[0].index}..${entries[entries.length - 1].index}`);
    return originalApply(entries);
  };
  runtime.start();
  // Elected alone: the term and vote, then the leader's noop entry, then its commit.
  for (;;) {
    const save = await wal.nextSave();
    save.release();
    if (save.batch.entries.some((entry) => entry.kind === 'noop')) break;
  }
  const commitNoop = await wal.nextSave();
  assert.ok(commitNoop.batch.hardState !== null && commitNoop.batch.entries.length === 0, 'a Ready that only writes the commit index');
  assert.equal(commitNoop.sync, false, 'a commit-only hard state is written without an fsync (etcd MustSync)');
  // The noop is on disk: it is applied before this write finishes.
  const deadline = Date.now() + 5000;
  while (!wal.events.some((event) => event.startsWith('apply'))) {
    assert.ok(Date.now() < deadline, `the committed noop was not applied while its commit index was written: ${wal.events.join(' | ')}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  commitNoop.release();

  // A write: its entry's own save must finish before it is applied.
  const written = runtime.propose({ v: 1, op: 'put', key: 'k', value: 'v', proposedAtMs: 1 }, 5000);
  const entrySave = await wal.nextSave();
  const putIndex = entrySave.batch.entries[0].index;
  assert.equal(entrySave.sync, true, 'entries are always synced');
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(!wal.events.includes(`apply ${putIndex}..${putIndex}`), 'not applied while its own write is in flight');
  entrySave.release();
  const commitPut = await wal.nextSave();
  // Committed by the entry's write; answered while the commit index is being written.
  const result = await written;
  assert.equal(result.kind, 'put');
  assert.ok(wal.events.indexOf(`apply ${putIndex}..${putIndex}`) > wal.events.indexOf(`save done: entries ${putIndex}..${putIndex}`));
  commitPut.release();
  assert.deepEqual(fatal, []);
});
