// Snapshots: export from one state machine, import into another, and compare; every way a stream
// can break must leave the receiver's old state intact and usable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SnapshotFormatError } from '../../../src/kvstore/errors.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { applyOne, collect, freshMachine, fromArray, LogBuilder, tempDir } from './helpers.js';

const T0 = 1_700_000_000_000;

/** A source state with history, a compaction, deletes and sessions. */
function buildSource(sm: KvStateMachine, log: LogBuilder, keys = 300): void {
  const entries: Entry[] = [];
  for (let i = 0; i < keys; i++) entries.push(log.put(`key/${i}`, `value ${i} `.repeat(20), T0 + i, { clientId: `client-${i % 7}`, seq: Math.floor(i / 7) + 1, ackedSeq: Math.max(0, Math.floor(i / 7) - 3) }));
  for (let i = 0; i < keys; i += 3) entries.push(log.put(`key/${i}`, `second ${i}`, T0 + keys));
  for (let i = 0; i < keys; i += 5) entries.push(log.del(`key/${i}`, T0 + keys));
  sm.apply(entries);
  sm.apply([log.compact(Math.floor(sm.revision / 2)), log.noop()]);
  sm.apply([log.put('after/compaction', 'yes', T0 + keys + 1)]);
}

interface Observed {
  readonly hash: ReturnType<KvStateMachine['hash']>;
  readonly stats: ReturnType<KvStateMachine['stats']>;
  readonly compactedRevision: number;
  readonly reads: readonly (string | null)[];
}

/** Everything a client could ask, at every readable revision for a sample of keys. */
function observe(sm: KvStateMachine, keys: readonly string[]): Observed {
  const reads: (string | null)[] = [];
  for (let revision = Math.max(1, sm.compactedRevision); revision <= sm.revision; revision += 7) {
    for (const key of keys) {
      const kv = sm.get(key, revision).kv;
      reads.push(kv === null ? null : `${kv.value}|${kv.createRevision}|${kv.modRevision}|${kv.version}`);
    }
  }
  return { hash: sm.hash(), stats: sm.stats(), compactedRevision: sm.compactedRevision, reads };
}

const SAMPLE_KEYS = ['key/0', 'key/1', 'key/3', 'key/5', 'key/42', 'key/299', 'after/compaction', 'missing'];

test('export then import into another path: equal hash, equal answers, sessions included', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    buildSource(source.sm, log);
    const exported = source.sm.exportSnapshot();
    assert.equal(exported.appliedIndex, source.sm.appliedIndex);
    assert.equal(exported.revision, source.sm.revision);
    const installed = await target.sm.importSnapshot(exported.chunks);
    assert.deepEqual(installed, { appliedIndex: source.sm.appliedIndex, revision: source.sm.revision });
    assert.equal(target.sm.appliedIndex, source.sm.appliedIndex);
    assert.deepEqual(observe(target.sm, SAMPLE_KEYS), observe(source.sm, SAMPLE_KEYS));
    // Both continue identically, including exactly-once answers remembered before the snapshot.
    const next = [log.put('key/1', 'retry', T0, { clientId: 'client-1', seq: 42, ackedSeq: 37 }), log.put('new', 'x', T0 + 999), log.compact(source.sm.revision)];
    const retried = next[0];
    const fromSource = source.sm.apply(next);
    const fromTarget = target.sm.apply(next);
    assert.deepEqual([...fromTarget], [...fromSource]);
    assert.equal(fromSource.get(retried.index)?.kind, 'put');
    assert.notEqual((fromSource.get(retried.index) as { value: string }).value, 'retry', 'seq 42 of client-1 was a remembered write');
    assert.deepEqual(observe(target.sm, SAMPLE_KEYS), observe(source.sm, SAMPLE_KEYS));
  } finally {
    await source.done();
    await target.done();
  }
});

test('an installed snapshot survives a restart; entries it covers are skipped afterwards', async () => {
  const source = await freshMachine();
  const dir = tempDir();
  const path = join(dir.path, 'state');
  const log = new LogBuilder();
  try {
    buildSource(source.sm, log, 50);
    let target = await KvStateMachine.open(path);
    await target.importSnapshot(source.sm.exportSnapshot().chunks);
    await target.close();
    assert.deepEqual(readdirSync(path).sort(), ['CURRENT', 'engine-000002'], 'the old generation was removed');
    target = await KvStateMachine.open(path);
    try {
      assert.deepEqual(observe(target, SAMPLE_KEYS), observe(source.sm, SAMPLE_KEYS));
      assert.equal(target.apply(log.entries).size, 0);
    } finally {
      await target.close();
    }
  } finally {
    await source.done();
    dir.remove();
  }
});

test('an export is a consistent view of the moment it was taken, while applies go on', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    buildSource(source.sm, log, 200);
    const before = observe(source.sm, SAMPLE_KEYS);
    const exported = source.sm.exportSnapshot();
    // Start reading, then change the source a lot before reading the rest.
    const iterator = exported.chunks[Symbol.asyncIterator]();
    const first = await iterator.next();
    const later: Entry[] = [];
    for (let i = 0; i < 500; i++) later.push(log.put(`key/${i}`, 'changed after the export began'));
    source.sm.apply(later);
    source.sm.apply([log.compact(source.sm.revision)]);
    while (source.sm.runMaintenance().compactionPending);
    const rest = [first.value as Uint8Array];
    for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) rest.push(step.value);
    await target.sm.importSnapshot(fromArray(rest));
    assert.equal(target.sm.appliedIndex, exported.appliedIndex);
    assert.deepEqual(observe(target.sm, SAMPLE_KEYS), before);
  } finally {
    await source.done();
    await target.done();
  }
});

test('an import stream cut off at any chunk boundary, or inside a chunk, leaves the old state intact', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    buildSource(source.sm, log, 2000);
    const chunks = await collect(source.sm.exportSnapshot().chunks);
    assert.ok(chunks.length >= 4, `a multi-chunk snapshot (${chunks.length} chunks)`);
    const targetLog = new LogBuilder();
    target.sm.apply([targetLog.put('mine', 'old state'), targetLog.put('mine', 'old state 2')]);
    const before = observe(target.sm, ['mine', ...SAMPLE_KEYS]);
    const cuts: Uint8Array[][] = [];
    for (let k = 0; k < chunks.length; k++) cuts.push(chunks.slice(0, k));
    for (const k of [0, 1, Math.floor(chunks.length / 2), chunks.length - 1]) {
      for (const keep of [1, 8, 13, chunks[k].length - 1]) cuts.push([...chunks.slice(0, k), chunks[k].subarray(0, keep)]);
    }
    for (const cut of cuts) {
      await assert.rejects(target.sm.importSnapshot(fromArray(cut)), SnapshotFormatError, `cut after ${cut.length} chunks`);
      assert.deepEqual(observe(target.sm, ['mine', ...SAMPLE_KEYS]), before);
    }
    assert.deepEqual(readdirSync(target.path).sort(), ['CURRENT', 'engine-000001'], 'no temp generation left behind');
    // Still a working state machine.
    assert.equal(applyOne(target.sm, targetLog.put('mine', 'new'))?.kind, 'put');
    // And the whole stream still installs.
    await target.sm.importSnapshot(fromArray(chunks));
    assert.deepEqual(observe(target.sm, SAMPLE_KEYS), observe(source.sm, SAMPLE_KEYS));
  } finally {
    await source.done();
    await target.done();
  }
});

test('a corrupted chunk anywhere, or trailing bytes, is refused and leaves the old state intact', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    buildSource(source.sm, log, 400);
    const chunks = await collect(source.sm.exportSnapshot().chunks);
    target.sm.apply([new LogBuilder().put('mine', 'old state')]);
    const before = observe(target.sm, ['mine']);
    const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    // Flip one byte at positions spread over the whole stream: header, records, trailer.
    const positions = [0, 5, 9, 14, 20, 40, 100, Math.floor(total / 3), Math.floor(total / 2), total - 40, total - 33, total - 1];
    for (const position of positions) {
      let offset = position;
      const corrupted = chunks.map((chunk) => {
        const copy = Uint8Array.from(chunk);
        if (offset >= 0 && offset < copy.length) copy[offset] ^= 0x5a;
        offset -= chunk.length;
        return copy;
      });
      await assert.rejects(target.sm.importSnapshot(fromArray(corrupted)), SnapshotFormatError, `byte ${position} of ${total}`);
      assert.deepEqual(observe(target.sm, ['mine']), before);
    }
    await assert.rejects(target.sm.importSnapshot(fromArray([...chunks, new Uint8Array([0])])), SnapshotFormatError, 'trailing byte');
    await assert.rejects(target.sm.importSnapshot(fromArray([new TextEncoder().encode('not a snapshot at all')])), SnapshotFormatError);
    assert.deepEqual(observe(target.sm, ['mine']), before);
    assert.deepEqual(readdirSync(target.path).sort(), ['CURRENT', 'engine-000001']);
  } finally {
    await source.done();
    await target.done();
  }
});

test('a stream that fails (a broken connection) rejects with its error and leaves the old state intact', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    buildSource(source.sm, log, 300);
    const chunks = await collect(source.sm.exportSnapshot().chunks);
    target.sm.apply([new LogBuilder().put('mine', 'old state')]);
    const before = observe(target.sm, ['mine']);
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield chunks[0];
      yield chunks[1];
      throw new Error('connection reset');
    }
    await assert.rejects(target.sm.importSnapshot(broken()), /connection reset/);
    assert.deepEqual(observe(target.sm, ['mine']), before);
  } finally {
    await source.done();
    await target.done();
  }
});

test('exports begun before an import finish from the replaced state; close() ends unfinished exports', async () => {
  const a = await freshMachine();
  const b = await freshMachine();
  try {
    buildSource(a.sm, new LogBuilder(), 2000);
    buildSource(b.sm, new LogBuilder(), 100);
    const bBefore = observe(b.sm, SAMPLE_KEYS);
    const fromB = b.sm.exportSnapshot();
    const iterator = fromB.chunks[Symbol.asyncIterator]();
    const first = await iterator.next();
    await b.sm.importSnapshot(a.sm.exportSnapshot().chunks);
    const rest = [first.value as Uint8Array];
    for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) rest.push(step.value);
    const c = await freshMachine();
    try {
      await c.sm.importSnapshot(fromArray(rest));
      assert.deepEqual(observe(c.sm, SAMPLE_KEYS), bBefore, 'the export saw B as it was before the install');
    } finally {
      await c.done();
    }
    assert.deepEqual(observe(b.sm, SAMPLE_KEYS), observe(a.sm, SAMPLE_KEYS));
    // An export nobody finishes is ended by close().
    const dangling = a.sm.exportSnapshot().chunks[Symbol.asyncIterator]();
    assert.equal((await dangling.next()).done, false);
    await a.sm.close();
    await assert.rejects(dangling.next(), /closed/);
  } finally {
    await a.done();
    await b.done();
  }
});

test('an empty store round-trips too', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  try {
    target.sm.apply([new LogBuilder().put('x', 'y')]);
    const installed = await target.sm.importSnapshot(source.sm.exportSnapshot().chunks);
    assert.deepEqual(installed, { appliedIndex: 0, revision: 1 });
    assert.deepEqual(target.sm.hash(), source.sm.hash());
    assert.equal(target.sm.count(), 0);
  } finally {
    await source.done();
    await target.done();
  }
});
