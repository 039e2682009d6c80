// Batched engine commits (engine.ts, commitIntervalMs): applies are visible at once, each apply is
// still all-or-nothing, read leases never see an uncommitted batch, sync() commits, and a process
// killed with a batch open comes back at the last committed batch with a consistent state (the
// runtime's WAL replay covers the rest). Plus the flush mode rule: 'durable' never uses noSync.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BATCH_MAX_BYTES, BATCH_MAX_TRANSACTS, Engine, lmdbSyncOptions } from '../../../src/kvstore/engine.js';
import { encodeCommand } from '../../../src/kvstore/commands.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { batchKillEntry } from './batch-kill-child.js';
import { failBatchCommits, freshMachine, LogBuilder, tempDir } from './helpers.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** Long enough that no batch commits by its timer during a test, unless the test waits for it. */
const NEVER_MS = 600_000;

/** The engine behind a state machine (private; tests look at its batch state). */
function engineOf(sm: KvStateMachine): { readonly hasOpenBatch: boolean } {
  return (sm as unknown as { engine: { readonly hasOpenBatch: boolean } }).engine;
}

test("the durable mode flushes (noMetaSync), never runs lmdb's noSync", () => {
  assert.deepEqual(lmdbSyncOptions('durable'), { overlappingSync: false, noSync: false, noMetaSync: true });
  assert.equal(lmdbSyncOptions('unsafe-no-sync').noSync, true);
  assert.equal(lmdbSyncOptions('bulk-load').noSync, true);
});

test('batched applies are visible at once; a throwing apply is undone alone', async () => {
  const { sm, done } = await freshMachine({ commitIntervalMs: NEVER_MS });
  const log = new LogBuilder();
  try {
    sm.apply([log.put('a', '1'), log.put('b', '2')]);
    assert.equal(engineOf(sm).hasOpenBatch, true, 'the applies wait in a batch');
    assert.equal(sm.get('a').kv?.value, '1');
    assert.equal(sm.count(), 2);
    // Out of order: the apply throws before writing; then one that throws half-way through.
    assert.throws(() => sm.apply([{ ...log.put('c', '3'), index: 99 }]), /contiguous/);
    const revision = sm.revision;
    const applied = sm.appliedIndex;
    const original = (sm as unknown as { applyEntry: (...args: unknown[]) => void }).applyEntry;
    let calls = 0;
    (sm as unknown as { applyEntry: (...args: unknown[]) => void }).applyEntry = function (this: unknown, ...args: unknown[]) {
      if (++calls === 2) throw new Error('injected failure in the second entry');
      return original.apply(this, args);
    };
    const fresh = new LogBuilder(applied + 1);
    assert.throws(() => sm.apply([fresh.put('d', '4'), fresh.put('e', '5')]), /injected/);
    (sm as unknown as { applyEntry: unknown }).applyEntry = original;
    assert.equal(sm.get('d').kv, null, 'the first entry of the failed apply is gone too');
    assert.equal(sm.get('a').kv?.value, '1', 'earlier applies of the batch are kept');
    assert.equal(sm.revision, revision);
    assert.equal(sm.appliedIndex, applied);
    assert.equal(engineOf(sm).hasOpenBatch, true);
  } finally {
    await done();
  }
});

test('a read lease commits the batch first and never sees a later apply', async () => {
  const { sm, done } = await freshMachine({ commitIntervalMs: NEVER_MS });
  const log = new LogBuilder();
  try {
    sm.apply([log.put('a', '1')]);
    const exported = sm.exportSnapshot();
    assert.equal(exported.appliedIndex, 1, 'the export sees the batched apply: it was committed first');
    assert.equal(engineOf(sm).hasOpenBatch, false);
    const before = (await sm.hashAsync());
    // While the export's lease lives, applies commit one by one and the lease keeps its view.
    sm.apply([log.put('a', '2'), log.put('b', '3')]);
    assert.equal(engineOf(sm).hasOpenBatch, false, 'no batch opens while a lease is held');
    const chunks: Uint8Array[] = [];
    for await (const chunk of exported.chunks) chunks.push(chunk);
    const copy = await freshMachine();
    try {
      await copy.sm.importSnapshot((async function* () { yield* chunks; })());
      assert.equal(copy.sm.appliedIndex, 1);
      assert.equal(copy.sm.get('a').kv?.value, '1', 'the snapshot holds the state at the lease, not the later apply');
      assert.equal(copy.sm.get('b').kv, null);
      assert.equal((await copy.sm.hashAsync()).hash, before.hash);
    } finally {
      await copy.done();
    }
    // With the lease released, batching resumes.
    sm.apply([log.put('c', '4')]);
    assert.equal(engineOf(sm).hasOpenBatch, true);
  } finally {
    await done();
  }
});

test('the batch commits by itself once its interval is up', async () => {
  const { sm, done } = await freshMachine({ commitIntervalMs: 20 });
  const log = new LogBuilder();
  try {
    sm.apply([log.put('a', '1')]);
    assert.equal(engineOf(sm).hasOpenBatch, true);
    const deadline = Date.now() + 10_000;
    while (engineOf(sm).hasOpenBatch) {
      assert.ok(Date.now() < deadline, 'the batch was still open 10 s after a 20 ms interval');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(sm.get('a').kv?.value, '1');
  } finally {
    await done();
  }
});

test('a batch commit that fails on its timer is reported at once, and the state machine refuses further use', async () => {
  const { sm, done } = await freshMachine({ commitIntervalMs: 20 });
  const log = new LogBuilder();
  try {
    const reported = new Promise<Error>((resolve) => sm.onEngineFailure(resolve));
    failBatchCommits(sm);
    sm.apply([log.put('a', '1')]);
    // The batch timer is unref'd; this deadline also keeps the event loop alive until it fires.
    let deadline: NodeJS.Timeout | undefined;
    const error = await Promise.race([reported, new Promise<never>((_, reject) => { deadline = setTimeout(() => reject(new Error('not reported within 10 s')), 10_000); })]);
    clearTimeout(deadline);
    assert.match(error.message, /injected: fdatasync failed/);
    assert.throws(() => sm.apply([log.put('b', '2')]), /unusable until restart/);
  } finally {
    await done().catch(() => {});
  }
});

/** Runs the child, then checks the reopened state against the entries it should hold. */
async function killAndCheck(before: number, after: number, expectedApplied: number): Promise<void> {
  const dir = tempDir();
  const path = join(dir.path, 'state');
  try {
    const child = spawnSync(process.execPath, [join(here, 'batch-kill-child.js'), path, String(before), String(after)], { encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const reopened = await KvStateMachine.open(path);
    try {
      assert.equal(reopened.appliedIndex, expectedApplied);
      // The same entries applied by a machine that never crashed: same keys, values, revision.
      const reference = await freshMachine({ unsafeNoSync: true });
      try {
        const entries = [];
        for (let index = 1; index <= expectedApplied; index++) {
          const { key, value } = batchKillEntry(index);
          entries.push({ kind: 'command' as const, term: 1, index, data: encodeCommand({ v: 1, op: 'put', key, value, proposedAtMs: 1 }) });
        }
        if (entries.length > 0) reference.sm.apply(entries);
        assert.deepEqual(reopened.hash(), reference.sm.hash());
        assert.deepEqual(reopened.stats(), reference.sm.stats());
      } finally {
        await reference.done();
      }
    } finally {
      await reopened.close();
    }
  } finally {
    dir.remove();
  }
}

test('killed with a batch open: the engine comes back at the last sync(), consistent', async () => {
  await killAndCheck(150, 40, 150);
});

test('a batch commits after BATCH_MAX_TRANSACTS applies even before its interval', async () => {
  // No sync at all: the only commit is the cap's, after exactly BATCH_MAX_TRANSACTS applies.
  await killAndCheck(0, BATCH_MAX_TRANSACTS + 10, BATCH_MAX_TRANSACTS);
});

test('a batch commits once its transacts declared BATCH_MAX_BYTES, even before its interval', async () => {
  const dir = tempDir();
  const engine = Engine.open(join(dir.path, 'engine'), { mode: 'durable', commitIntervalMs: NEVER_MS, mapSizeBytes: 64 * 1024 * 1024 });
  try {
    const key = Buffer.from('k');
    engine.transact(() => engine.dbs.meta.putSync(key, Buffer.from('1')), BATCH_MAX_BYTES - 1);
    assert.equal(engine.hasOpenBatch, true, 'below the bound the batch stays open');
    engine.transact(() => engine.dbs.meta.putSync(key, Buffer.from('2')), 1);
    assert.equal(engine.hasOpenBatch, false, 'the bytes bound committed it');
    engine.transact(() => engine.dbs.meta.putSync(key, Buffer.from('3')));
    assert.equal(engine.hasOpenBatch, true, 'a new batch opens');
  } finally {
    await engine.close();
    dir.remove();
  }
});
