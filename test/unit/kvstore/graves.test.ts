// Deleted keys and the links that reads at past revisions walk (mvcc.ts): graves, re-created keys
// linked to their tombstone, checkpoints that bound a walk, snapshot imports that check the links
// (and mend those of a sender built before graves existed), and the refusal of an engine format
// this build does not know.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue } from '../../../src/codec/raft-codec.js';
import { Engine, DEFAULT_MAP_SIZE_BYTES } from '../../../src/kvstore/engine.js';
import { CHECKPOINT_EVERY_VERSIONS, decodeHistory, readU64, withPreviousRevision } from '../../../src/kvstore/encoding.js';
import { EngineFormatError, SnapshotFormatError } from '../../../src/kvstore/errors.js';
import { ENGINE_MAGIC } from '../../../src/kvstore/meta.js';
import { changeAtOrBelow, deleteKey, putKey, STEPS_BEFORE_CHECKPOINT_SEEK } from '../../../src/kvstore/mvcc.js';
import { RECORD_HISTORY, SnapshotReader, SnapshotWriter } from '../../../src/kvstore/snapshot-format.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { StoreDirectory } from '../../../src/kvstore/store-directory.js';
import { collect, freshMachine, fromArray, LogBuilder, tempDir } from './helpers.js';

/** Every key's answer at every readable revision, as a client would see it. */
function answers(sm: KvStateMachine, keys: readonly string[]): string[] {
  const seen: string[] = [];
  for (let revision = Math.max(1, sm.compactedRevision); revision <= sm.revision; revision++) {
    for (const key of keys) {
      const kv = sm.get(key, revision).kv;
      seen.push(`${key}@${revision}=${kv === null ? '-' : `${kv.value}|${kv.createRevision}|${kv.modRevision}|${kv.version}`}`);
    }
  }
  return seen;
}

/** a: put, put, delete, put again (re-created), delete; b: put, delete; c: put. */
function deletesAndRecreates(sm: KvStateMachine, log: LogBuilder): void {
  sm.apply([
    log.put('a', 'a1'), log.put('b', 'b1'), log.put('a', 'a2'), log.del('a'), log.put('c', 'c1'),
    log.put('a', 'a3'), log.del('b'), log.put('a', 'a4'), log.del('a'),
  ]);
}

/** Rewrite a snapshot stream's history records through `rewrite` (with a valid checksum again). */
async function rewriteHistory(chunks: AsyncIterable<Uint8Array>, rewrite: (revision: number, value: Buffer) => Buffer): Promise<Uint8Array[]> {
  const reader = new SnapshotReader();
  let writer: SnapshotWriter | null = null;
  const out: Uint8Array[] = [];
  for (const chunk of await collect(chunks)) {
    for (const item of reader.push(chunk)) {
      if (item.kind === 'header') {
        writer = new SnapshotWriter(item.meta);
        continue;
      }
      assert.ok(writer !== null);
      writer.record(item.type, item.key, item.type === RECORD_HISTORY ? rewrite(readU64(item.key, 0), item.value) : item.value);
      for (let next = writer.takeChunk(); next !== null; next = writer.takeChunk()) out.push(next);
    }
  }
  reader.end();
  assert.ok(writer !== null);
  out.push(writer.finish());
  return out;
}

test('a deleted key keeps its past readable; a re-created key links to its tombstone; graves come and go', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    deletesAndRecreates(sm, log);
    // Revisions: a1@2 b1@3 a2@4 a-del@5 c1@6 a3@7 b-del@8 a4@9 a-del@10.
    assert.equal(sm.get('a', 4).kv?.value, 'a2');
    assert.equal(sm.get('a', 5).kv, null);
    assert.deepEqual(sm.get('a', 8).kv, { key: 'a', value: 'a3', createRevision: 7, modRevision: 7, version: 1 });
    assert.equal(sm.get('a', 9).kv?.value, 'a4');
    assert.equal(sm.get('a', 10).kv, null);
    assert.equal(sm.get('b', 7).kv?.value, 'b1');
    assert.equal(sm.get('b', 8).kv, null);
    assert.equal(sm.stats().graves, 2, 'a and b are deleted');
    assert.equal(sm.count(), 1);
    // Compacting past b's tombstone removes it and b's grave; a's tombstone at 10 stays.
    sm.apply([log.compact(9)]);
    while (sm.runMaintenance().compactionPending);
    assert.equal(sm.stats().graves, 1);
    assert.equal(sm.get('b', 9).kv, null);
    assert.equal(sm.get('a', 9).kv?.value, 'a4');
    // Re-creating a removes its grave.
    sm.apply([log.put('a', 'a5')]);
    assert.equal(sm.stats().graves, 0);
    assert.equal(sm.get('a', 10).kv, null);
    assert.equal(sm.get('a', 9).kv?.value, 'a4', 'the walk from a5 passes the tombstone at 10');
  } finally {
    await done();
  }
});

test('an import mends a re-created key that links to nothing (a sender from before graves), and answers as the source', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    deletesAndRecreates(source.sm, log);
    const keys = ['a', 'b', 'c', 'missing'];
    let unlinked = 0;
    const oldStyle = await rewriteHistory(source.sm.exportSnapshot().chunks, (_revision, value) => {
      const record = decodeHistory(value);
      const recreates = record.kind === 'put' && record.version === 1 && record.previousRevision > 0;
      if (recreates) unlinked += 1;
      return recreates ? withPreviousRevision(value, 0) : value;
    });
    assert.equal(unlinked, 1, 'a3 re-creates a');
    await target.sm.importSnapshot(fromArray(oldStyle));
    assert.deepEqual(answers(target.sm, keys), answers(source.sm, keys));
    assert.deepEqual(target.sm.hash(), source.sm.hash());
    assert.deepEqual(target.sm.stats(), source.sm.stats());
  } finally {
    await source.done();
    await target.done();
  }
});

test('an import refuses a history record whose link is not its key\'s previous change, and keeps the old state', async () => {
  const source = await freshMachine();
  const target = await freshMachine();
  const log = new LogBuilder();
  try {
    deletesAndRecreates(source.sm, log);
    target.sm.apply([new LogBuilder().put('x', 'old state')]);
    const before = target.sm.hash();
    // a2@4 links to a1@2; point it at b1@3 instead (a peer speaking garbage).
    const broken = await rewriteHistory(source.sm.exportSnapshot().chunks, (revision, value) => (revision === 4 ? withPreviousRevision(value, 3) : value));
    await assert.rejects(target.sm.importSnapshot(fromArray(broken)), (error: unknown) => error instanceof SnapshotFormatError && /revision 4: links to revision 3/.test(error.message));
    assert.deepEqual(target.sm.hash(), before);
    // A link to a change above the compacted revision that the stream does not hold.
    const dangling = await rewriteHistory(source.sm.exportSnapshot().chunks, (revision, value) => (revision === 6 ? withPreviousRevision(value, 5) : value));
    await assert.rejects(target.sm.importSnapshot(fromArray(dangling)), SnapshotFormatError);
    assert.deepEqual(target.sm.hash(), before);
  } finally {
    await source.done();
    await target.done();
  }
});

test('an engine of a format this build does not know (a newer one) is refused', async () => {
  const dir = tempDir();
  try {
    const sm = await KvStateMachine.open(dir.path);
    await sm.close();
    const { directory } = await StoreDirectory.open(dir.path);
    const engine = Engine.open(directory.liveEngineDirectory, { mode: 'durable', mapSizeBytes: DEFAULT_MAP_SIZE_BYTES });
    engine.transact(() => engine.dbs.meta.putSync(Buffer.from('schema'), Buffer.from(encodeValue({ magic: ENGINE_MAGIC, formatVersion: 3 }))));
    await engine.close();
    await assert.rejects(KvStateMachine.open(dir.path), (error: unknown) => error instanceof EngineFormatError && /format version is 3; this build reads 2$/.test(error.message));
  } finally {
    dir.remove();
  }
});

test('a read far in the past of a hot key looks at no more than a checkpoint interval of history (and a few steps before its seek)', async () => {
  const dir = tempDir();
  const engine = Engine.open(dir.path, { mode: 'unsafe-no-sync', mapSizeBytes: DEFAULT_MAP_SIZE_BYTES });
  try {
    let lookups = 0;
    const history = engine.dbs.history;
    const counted = new Proxy(history, {
      get(target, property, receiver) {
        if (property === 'getBinaryFast') return (...args: unknown[]) => { lookups += 1; return (target.getBinaryFast as (...a: unknown[]) => unknown).apply(target, args); };
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const dbs = { live: engine.dbs.live, history: counted, graves: engine.dbs.graves, checkpoints: engine.dbs.checkpoints };
    const key = Buffer.from('hot');
    // 1,000 puts, a delete, 130 puts again (a re-created key restarts its versions), 300 puts of
    // another key in between so that revisions and versions differ.
    const expected = new Map<number, string | null>();
    let revision = 1;
    let current: string | null = null;
    const step = (change: () => void, value: string | null | undefined): void => {
      revision += 1;
      engine.transact(change);
      if (value !== undefined) current = value;
      expected.set(revision, current);
    };
    for (let i = 0; i < 1000; i++) {
      step(() => putKey(dbs, key, `v${i}`, revision), `v${i}`);
      if (i % 4 === 0) step(() => putKey(dbs, Buffer.from('other'), `o${i}`, revision), undefined);
    }
    step(() => deleteKey(dbs, key, revision), null);
    for (let i = 0; i < 130; i++) step(() => putKey(dbs, key, `w${i}`, revision), `w${i}`);
    let most = 0;
    for (let at = 2; at <= revision; at += 7) {
      lookups = 0;
      const found = changeAtOrBelow(dbs, key, at, 0);
      const value = found === null ? null : (() => { const record = decodeHistory(found.record); return record.kind === 'put' ? record.value : null; })();
      assert.equal(value, expected.get(at) ?? null, `hot at ${at}`);
      most = Math.max(most, lookups);
    }
    const bound = STEPS_BEFORE_CHECKPOINT_SEEK + CHECKPOINT_EVERY_VERSIONS + 1;
    assert.ok(most <= bound, `at most ${bound} history lookups per read, saw ${most}`);
    assert.ok(most >= CHECKPOINT_EVERY_VERSIONS / 2, `the walks between checkpoints are real walks (${most} lookups at most)`);
  } finally {
    await engine.close();
    dir.remove();
  }
});
