// Replays and restarts: entries at or below the applied index are skipped, the applied index is
// stored with the data it produced, and a reopened state machine resumes exactly where it was.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { applyOne, freshMachine, LogBuilder, tempDir } from './helpers.js';

test('applying the same entries twice gives the same state: the replay is skipped', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const entries = [log.put('a', '1'), log.put('b', '2'), log.del('a'), log.noop(), log.put('c', '3', 1000, { clientId: 'x', seq: 1, ackedSeq: 0 })];
    const first = sm.apply(entries);
    const after = { hash: sm.hash(), stats: sm.stats() };
    const again = sm.apply(entries);
    assert.equal(again.size, 0, 'nothing was applied the second time');
    assert.deepEqual({ hash: sm.hash(), stats: sm.stats() }, after);
    // A batch that overlaps the applied index applies only its new tail.
    const more = [log.put('d', '4')];
    const overlap = sm.apply([...entries.slice(2), ...more]);
    assert.deepEqual([...overlap.keys()], [more[0].index]);
    assert.equal(first.size, 4);
    assert.equal(sm.appliedIndex, log.lastIndex);
  } finally {
    await done();
  }
});

test('close and reopen: same state, same applied index, revision and compaction', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'state');
  const log = new LogBuilder();
  try {
    const sm = await KvStateMachine.open(path);
    sm.apply([log.put('a', '1'), log.put('a', '2'), log.put('b', '3'), log.del('b'), log.put('c', '4')]);
    sm.apply([log.compact(3), log.noop()]);
    const before = { hash: sm.hash(), stats: sm.stats(), compacted: sm.compactedRevision, a3: sm.get('a', 3) };
    await sm.sync();
    await sm.close();
    assert.throws(() => sm.get('a'), /closed/);

    const reopened = await KvStateMachine.open(path);
    try {
      assert.equal(reopened.appliedIndex, log.lastIndex);
      assert.deepEqual({ hash: reopened.hash(), stats: reopened.stats(), compacted: reopened.compactedRevision, a3: reopened.get('a', 3) }, before);
      // The runtime replays its WAL from the applied index: the old entries are skipped.
      assert.equal(reopened.apply(log.entries).size, 0);
      assert.deepEqual(applyOne(reopened, log.put('a', '5')), { kind: 'put', key: 'a', value: '5', createRevision: 2, modRevision: 7, version: 3, revision: 7 });
    } finally {
      await reopened.close();
    }
  } finally {
    dir.remove();
  }
});

test('a failed apply leaves nothing behind: not in the engine, not in the cached revision', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply([log.put('a', '1')]);
    const before = { hash: sm.hash(), applied: sm.appliedIndex, revision: sm.revision, stats: sm.stats() };
    const good = log.put('b', '2');
    // A hole inside the batch is detected before anything is written.
    log.put('hole', 'x');
    const afterHole = log.put('c', '3');
    assert.throws(() => sm.apply([good, afterHole]), /not contiguous/);
    assert.deepEqual({ hash: sm.hash(), applied: sm.appliedIndex, revision: sm.revision, stats: sm.stats() }, before);

    // A failure in the middle of the transaction (here an entry that blows up when read, standing
    // in for a bug or an engine error) rolls back the entries before it in the same call.
    const second = new LogBuilder(sm.appliedIndex + 1);
    const first = second.put('b', '2', 1000, { clientId: 'c', seq: 1, ackedSeq: 0 });
    const exploding = Object.defineProperty({ term: 1, index: first.index + 1, data: new Uint8Array() }, 'kind', { get: () => { throw new Error('boom'); } }) as unknown as Entry;
    assert.throws(() => sm.apply([first, exploding]), /boom/);
    assert.deepEqual({ hash: sm.hash(), applied: sm.appliedIndex, revision: sm.revision, stats: sm.stats() }, before);
    // Still usable: the same entries apply normally afterwards, exactly once.
    assert.equal(sm.apply([first]).get(first.index)?.kind, 'put');
    assert.equal(sm.revision, 3);
  } finally {
    await done();
  }
});

const here = fileURLToPath(new URL('.', import.meta.url));

test('a process killed with SIGKILL right after apply() returns resumes at that apply', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'state');
  try {
    // The child applies 50 batches and SIGKILLs itself (no close, no sync) after the last one.
    const child = spawnSync(process.execPath, [join(here, 'kill-child.js'), path, '50'], { encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const reopened = await KvStateMachine.open(path);
    try {
      assert.equal(reopened.appliedIndex, 50 * 100);
      assert.equal(reopened.count(), 1000);
      assert.equal(reopened.get('key-999').kv?.value, 'value-4998-batch-49', 'written at index 4,999 of the last batch');
    } finally {
      await reopened.close();
    }
  } finally {
    dir.remove();
  }
});

test('open() cleans up what an interrupted snapshot install left, and refuses foreign directories', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'state');
  const log = new LogBuilder();
  try {
    const sm = await KvStateMachine.open(path);
    sm.apply([log.put('a', '1')]);
    await sm.close();
    // A crash during an import leaves a temp generation and maybe a half-written CURRENT.tmp.
    mkdirSync(join(path, 'engine-000002.tmp'));
    writeFileSync(join(path, 'engine-000002.tmp', 'data.mdb'), 'partial');
    writeFileSync(join(path, 'CURRENT.tmp'), 'engine-0000');
    const reopened = await KvStateMachine.open(path);
    assert.equal(reopened.get('a').kv?.value, '1');
    await reopened.close();
    assert.deepEqual(readdirSync(path).sort(), ['CURRENT', 'engine-000001']);

    const foreign = join(dir.path, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    await assert.rejects(KvStateMachine.open(foreign), /refusing/);
    assert.ok(existsSync(join(foreign, 'notes.txt')));
  } finally {
    dir.remove();
  }
});
