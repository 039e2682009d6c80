// Hand-written histories with a known answer: each linearizable one has a specific order that
// works, each violation is a classic anomaly a broken Raft KV store would produce.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizable, type CheckResult } from '../../lincheck/check.js';
import type { KvOperation } from '../../lincheck/history.js';
import { HistoryBuilder } from './support.js';

function assertLinearizable(history: readonly KvOperation[]): void {
  const r = checkLinearizable(history, { timeBudgetMs: 5_000 });
  assert.equal(r.verdict, 'linearizable', r.verdict === 'violation' ? r.explanation : JSON.stringify(r));
}

function assertViolation(history: readonly KvOperation[], key = 'k'): Extract<CheckResult, { verdict: 'violation' }> {
  const r = checkLinearizable(history, { timeBudgetMs: 5_000 });
  assert.equal(r.verdict, 'violation', JSON.stringify(r));
  if (r.verdict !== 'violation') throw new Error('unreachable');
  assert.equal(r.key, key);
  return r;
}

describe('linearizable histories', () => {
  test('sequential puts, gets and deletes', () => {
    assertLinearizable(
      new HistoryBuilder()
        .get({ output: null, at: [0, 1] })
        .put({ value: 'a', at: [2, 3] })
        .get({ output: 'a', at: [4, 5] })
        .put({ value: 'b', at: [6, 7] })
        .get({ output: 'b', at: [8, 9] })
        .del({ deleted: true, at: [10, 11] })
        .get({ output: null, at: [12, 13] })
        .del({ deleted: false, at: [14, 15] }).ops,
    );
  });

  test('concurrent overlaps where only one order works', () => {
    // put a and put b overlap; the reads force b before a, the opposite of invocation order.
    assertLinearizable(
      new HistoryBuilder()
        .put({ client: 1, value: 'a', at: [0, 100] })
        .put({ client: 2, value: 'b', at: [10, 20] })
        .get({ client: 3, output: 'b', at: [30, 40] })
        .get({ client: 3, output: 'a', at: [150, 160] }).ops,
    );
    // A read overlapping a write may see the old value, and then a later read the new one.
    assertLinearizable(
      new HistoryBuilder()
        .put({ client: 1, value: 'a', at: [0, 5] })
        .put({ client: 1, value: 'b', at: [10, 50] })
        .get({ client: 2, output: 'a', at: [12, 20] })
        .get({ client: 3, output: 'b', at: [15, 25] })
        .get({ client: 2, output: 'b', at: [30, 40] }).ops,
    );
  });

  test('operations that merely touch in time are concurrent', () => {
    // The get returns at 10 and the put is invoked at 10: either order is allowed.
    assertLinearizable(
      new HistoryBuilder().put({ client: 1, value: 'a', at: [10, 20] }).get({ client: 2, output: 'a', at: [0, 10] }).ops,
    );
  });

  test('an unknown write that took effect, even long after its client gave up', () => {
    assertLinearizable(
      new HistoryBuilder()
        .put({ client: 1, value: 'a', at: [0, 10] })
        .put({ client: 2, value: 'b', at: [20, null] })
        .get({ client: 3, output: 'a', at: [30, 40] })
        .get({ client: 3, output: 'b', at: [500, 510] }).ops,
    );
  });

  test('an unknown write that never took effect', () => {
    assertLinearizable(
      new HistoryBuilder()
        .put({ client: 1, value: 'a', at: [0, 10] })
        .put({ client: 2, value: 'b', at: [20, null] })
        .get({ client: 3, output: 'a', at: [30, 40] })
        .get({ client: 3, output: 'a', at: [500, 510] }).ops,
    );
  });

  test('an unknown delete that took effect and one that did not', () => {
    assertLinearizable(
      new HistoryBuilder()
        .put({ value: 'a', at: [0, 10] })
        .del({ client: 2, at: [20, null] })
        .get({ client: 3, output: 'a', at: [30, 40] })
        .get({ client: 3, output: null, at: [50, 60] })
        .put({ value: 'b', at: [70, 80] })
        .del({ client: 4, at: [90, null] })
        .get({ client: 3, output: 'b', at: [100, 110] }).ops,
    );
  });

  test('deletes with deleted=true and deleted=false racing each other', () => {
    // Two concurrent deletes of a present key: exactly one of them removes it.
    assertLinearizable(
      new HistoryBuilder()
        .put({ value: 'a', at: [0, 10] })
        .del({ client: 2, deleted: false, at: [20, 30] })
        .del({ client: 3, deleted: true, at: [21, 31] })
        .get({ output: null, at: [40, 50] }).ops,
    );
  });

  test('failed operations and unknown reads are ignored', () => {
    assertLinearizable(
      new HistoryBuilder()
        .put({ value: 'a', at: [0, 10] })
        .put({ value: 'zzz', at: [11, 12], status: 'fail' })
        .get({ client: 2, at: [13, null] })
        .get({ output: 'a', at: [20, 30] }).ops,
    );
  });

  test('repeated values are allowed (no reliance on unique writes)', () => {
    assertLinearizable(
      new HistoryBuilder()
        .put({ value: 'x', at: [0, 10] })
        .put({ value: 'y', at: [20, 30] })
        .put({ client: 2, value: 'x', at: [25, 60] })
        .get({ client: 3, output: 'x', at: [40, 45] })
        .get({ client: 3, output: 'x', at: [70, 80] }).ops,
    );
  });

  test('many lost writes that never took effect stay cheap', () => {
    // 60 writes whose replies were lost, all pending for the whole history, before 600
    // sequential operations that none of them affected. Trying every subset of them before
    // each read would never finish.
    const b = new HistoryBuilder();
    for (let i = 0; i < 60; i++) b.put({ client: 100 + i, value: `lost${String(i)}`, at: [i, null] });
    for (let i = 0; i < 200; i++) {
      const t = 100 + i * 10;
      b.put({ value: `v${String(i)}`, at: [t, t + 3] });
      b.get({ client: 2, output: `v${String(i)}`, at: [t + 4, t + 6] });
      b.del({ client: 3, deleted: true, at: [t + 7, t + 9] });
    }
    const r = checkLinearizable(b.ops, { timeBudgetMs: 2_000 });
    assert.equal(r.verdict, 'linearizable', JSON.stringify(r).slice(0, 300));
  });

  test('a lost write can explain a read long after its client gave up, among many lost writes', () => {
    const b = new HistoryBuilder();
    for (let i = 0; i < 40; i++) b.put({ client: 100 + i, value: `lost${String(i)}`, at: [i, null] });
    for (let i = 0; i < 100; i++) b.get({ client: 2, output: null, at: [100 + i * 10, 105 + i * 10] });
    b.get({ client: 2, output: 'lost17', at: [2000, 2001] });
    b.get({ client: 2, output: 'lost3', at: [2002, 2003] });
    b.del({ client: 2, deleted: true, at: [2004, 2005] });
    b.get({ client: 2, output: 'lost30', at: [2006, 2007] });
    assert.equal(checkLinearizable(b.ops, { timeBudgetMs: 2_000 }).verdict, 'linearizable');
    // ...but not one that was already superseded by a completed delete and never rewritten.
    b.del({ client: 2, deleted: true, at: [2008, 2009] });
    b.get({ client: 2, output: 'lost30', at: [2010, 2011] });
    assert.equal(checkLinearizable(b.ops, { timeBudgetMs: 2_000 }).verdict, 'violation');
  });

  test('keys are independent and counted', () => {
    const h = new HistoryBuilder()
      .put({ key: 'a', value: '1', at: [0, 10] })
      .put({ key: 'b', value: '2', at: [0, 10] })
      .get({ key: 'a', output: '1', at: [20, 30] })
      .get({ key: 'b', output: '2', at: [20, 30] })
      .get({ key: 'c', output: null, at: [20, 30] })
      .put({ key: 'c', value: '3', at: [0, 5], status: 'fail' }).ops;
    assert.deepEqual(checkLinearizable(h), { verdict: 'linearizable', keysChecked: 3, operationsChecked: 5 });
  });
});

describe('violations', () => {
  test('stale read after a completed write', () => {
    const r = assertViolation(
      new HistoryBuilder().put({ client: 1, value: 'a', at: [0, 10] }).get({ client: 2, output: null, at: [20, 30] }).ops,
    );
    assert.match(r.explanation, /key "k"/);
    assert.match(r.explanation, /#2 client 2 get -> absent \[20, 30\]/);
    assert.match(r.explanation, /get read absent but the key held "a"/);
    assert.deepEqual(r.operations.map((op) => op.id), [1, 2]);
  });

  test('read of a value never written', () => {
    const r = assertViolation(
      new HistoryBuilder().put({ value: 'a', at: [0, 10] }).get({ client: 2, output: 'ghost', at: [5, 30] }).ops,
    );
    assert.match(r.explanation, /get read "ghost"/);
    assert.ok(r.operations.some((op) => op.id === 2));
  });

  test('lost write: a read sees an older value after a newer write completed', () => {
    const r = assertViolation(
      new HistoryBuilder()
        .put({ value: 'old', at: [0, 10] })
        .put({ value: 'new', at: [20, 30] })
        .get({ client: 2, output: 'old', at: [40, 50] }).ops,
    );
    assert.match(r.explanation, /Longest linearizable prefix found: 2 operations:/);
    assert.match(r.explanation, /get read "old" but the key held "new"/);
  });

  test('a delete reporting deleted=false while the key was present', () => {
    const r = assertViolation(
      new HistoryBuilder().put({ value: 'a', at: [0, 10] }).del({ client: 2, deleted: false, at: [20, 30] }).ops,
    );
    assert.match(r.explanation, /delete reported deleted=false but the key held "a"/);
  });

  test('a delete reporting deleted=true on an absent key', () => {
    assertViolation(new HistoryBuilder().del({ deleted: true, at: [0, 10] }).ops);
  });

  test('new-old inversion: two reads see the values in opposite orders', () => {
    const r = assertViolation(
      new HistoryBuilder()
        .put({ client: 1, value: 'a', at: [0, 10] })
        .put({ client: 1, value: 'b', at: [20, 100] })
        .get({ client: 2, output: 'b', at: [30, 40] })
        .get({ client: 3, output: 'a', at: [50, 60] }).ops,
    );
    assert.match(r.explanation, /get read "a" but the key held "b"/);
    assert.deepEqual(r.operations.map((op) => op.id).sort(), [1, 2, 3, 4]);
  });

  test('an unknown write cannot explain a read that happened before it was invoked', () => {
    assertViolation(
      new HistoryBuilder().get({ client: 1, output: 'b', at: [0, 10] }).put({ client: 2, value: 'b', at: [20, null] }).ops,
    );
  });

  test('a failed write must not be visible', () => {
    assertViolation(
      new HistoryBuilder().put({ value: 'b', at: [0, 10], status: 'fail' }).get({ client: 2, output: 'b', at: [20, 30] }).ops,
    );
  });

  test('the violating key is reported among healthy ones', () => {
    const h = new HistoryBuilder()
      .put({ key: 'good', value: '1', at: [0, 10] })
      .get({ key: 'good', output: '1', at: [20, 30] })
      .put({ key: 'bad', value: '2', at: [0, 10] })
      .get({ key: 'bad', output: null, at: [20, 30] }).ops;
    assertViolation(h, 'bad');
  });

  test('the explanation does not blame a write whose outcome is unknown', () => {
    // Linearizing the lost put "c" before the failing read also gets stuck, but "the key held c"
    // would send a human after a write that may never have happened.
    const r = assertViolation(
      new HistoryBuilder()
        .put({ client: 1, value: 'a', at: [0, 10] })
        .put({ client: 1, value: 'b', at: [20, 100] })
        .get({ client: 2, output: 'b', at: [30, 40] })
        .put({ client: 4, value: 'c', at: [35, null] })
        .get({ client: 3, output: 'a', at: [50, 60] }).ops,
    );
    assert.match(r.explanation, /get read "a" but the key held "b"/);
    assert.match(r.explanation, /pending at that point:\n {4}#4 client 4 put "c" unknown \[35, ∞\)/);
  });

  test('the explanation shows only a window around a late failure', () => {
    const b = new HistoryBuilder();
    for (let i = 0; i < 50; i++) b.put({ value: `v${String(i)}`, at: [i * 10, i * 10 + 5] });
    b.get({ client: 2, output: 'v10', at: [600, 610] });
    const r = assertViolation(b.ops);
    assert.match(r.explanation, /50 operations, last 6 shown \(44 earlier omitted\)/);
    assert.ok(r.operations.length <= 8, `window of ${String(r.operations.length)} operations`);
    assert.equal(r.operations.at(-1)?.id, 51);
  });
});
