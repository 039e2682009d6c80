// The Ready loop applies committed entries that are already on disk while the Ready's own write
// (new entries) is still being fsynced, and never applies an entry before the write that stores it
// has finished; a Ready that only moves the commit index writes nothing, and the next write carries
// that commit index. A one-node cluster over a write-ahead log whose saves the test releases by
// hand, and a real state machine.

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

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Lets every save waiting now finish (so a failed test can still stop its runtime). */
  releaseAll(): void {
    for (const save of this.pending.splice(0)) save.release();
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

test('committed entries on disk are applied while the next write is in flight, never before their own write; a commit index alone is not written', async (t) => {
  const dir = tempDir('apply-while-persisting-');
  const kv = await KvStateMachine.open(`${dir.path}/kv`, { unsafeNoSync: true });
  const wal = new GatedWal();
  const fatal: Error[] = [];
  const runtime = oneNodeRuntime({ dataDir: dir.path, kv, wal, onFatal: (error) => fatal.push(error) });
  t.after(async () => {
    wal.releaseAll();
    await runtime.stop();
    await kv.close();
    dir.remove();
  });
  const originalApply = kv.apply.bind(kv);
  kv.apply = (entries) => {
    wal.events.push(`apply ${entries[0].index}..${entries[entries.length - 1].index}`);
    return originalApply(entries);
  };
  const appliedEvent = async (index: Index): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!wal.events.some((event) => event.startsWith('apply') && event.endsWith(`..${index}`))) {
      assert.ok(Date.now() < deadline, `entry ${index} was not applied: ${wal.events.join(' | ')}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
  runtime.start();
  // Elected alone: the term and vote, then the leader's noop entry, committed by its own write.
  let noopIndex = 0;
  for (;;) {
    const save = await wal.nextSave();
    save.release();
    const noop = save.batch.entries.find((entry) => entry.kind === 'noop');
    if (noop !== undefined) {
      noopIndex = noop.index;
      break;
    }
  }
  // The Ready that commits it only moves the commit index: it writes nothing and applies at once.
  await appliedEvent(noopIndex);
  assert.equal(wal.pendingCount, 0, `a commit index alone was written: ${wal.events.join(' | ')}`);

  // A write: its entry's own save must finish before it is applied; the commit index held back
  // goes with it.
  const written1 = runtime.propose({ v: 1, op: 'put', key: 'k', value: 'v1', proposedAtMs: 1 }, 5000);
  const save1 = await wal.nextSave();
  const put1 = save1.batch.entries[0].index;
  assert.equal(save1.sync, true, 'entries are always synced');
  assert.equal(save1.batch.hardState?.commitIndex, noopIndex, 'the commit index not written before rides along with the next write');
  // A second write proposed while the first is being written goes into the next Ready.
  const written2 = runtime.propose({ v: 1, op: 'put', key: 'k', value: 'v2', proposedAtMs: 2 }, 5000);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(!wal.events.some((event) => event.startsWith('apply') && event.endsWith(`..${put1}`)), 'not applied while its own write is in flight');
  save1.release();
  // That Ready writes the second entry and the first one's commit; the first is applied and
  // answered while that write is still in flight.
  const save2 = await wal.nextSave();
  const put2 = save2.batch.entries[0].index;
  assert.equal(put2, put1 + 1);
  assert.equal(save2.batch.hardState?.commitIndex, put1);
  const result1 = await written1;
  assert.equal(result1.kind, 'put');
  assert.ok(!wal.events.includes(`save done: entries ${put2}..${put2}, commit ${put1}`), 'answered before the write in flight finished');
  assert.ok(!wal.events.some((event) => event.startsWith('apply') && event.endsWith(`..${put2}`)), 'the second entry is not applied before its write finished');
  save2.release();
  // Committed by its own write: applied and answered with nothing more written.
  const result2 = await written2;
  assert.equal(result2.kind, 'put');
  assert.equal(wal.pendingCount, 0, `a commit index alone was written: ${wal.events.join(' | ')}`);
  const order = (event: string): number => wal.events.findIndex((e) => e.startsWith(event));
  assert.ok(order(`apply ${put1}`) > order(`save done: entries ${put1}..${put1}`));
  assert.ok(order(`apply ${put2}`) > order(`save done: entries ${put2}..${put2}`));
  assert.deepEqual(fatal, []);
});
