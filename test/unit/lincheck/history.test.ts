// Malformed histories must be rejected loudly, not judged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidHistoryError, type KvOperation } from '../../lincheck/history.js';
import { checkLinearizable } from '../../lincheck/check.js';
import { HistoryBuilder } from './support.js';

function rejects(history: readonly KvOperation[], pattern: RegExp, id?: number): void {
  assert.throws(
    () => checkLinearizable(history),
    (err: unknown) => {
      assert.ok(err instanceof InvalidHistoryError, `expected InvalidHistoryError, got ${String(err)}`);
      assert.match(err.message, pattern);
      if (id !== undefined) assert.equal(err.operationId, id);
      return true;
    },
  );
}

test('an ok operation without completeTime is rejected', () => {
  const h = new HistoryBuilder().put({ value: 'a', at: [0, 10] }).ops;
  rejects([...h, { ...h[0], id: 2, completeTime: null, status: 'ok' }], /status ok but completeTime is missing/, 2);
});

test('completeTime before invokeTime is rejected', () => {
  const h = new HistoryBuilder().put({ value: 'a', at: [10, 5] }).ops;
  rejects(h, /completeTime 5 is before invokeTime 10/, 1);
});

test('duplicate ids are rejected', () => {
  const h = new HistoryBuilder().put({ value: 'a', at: [0, 1] }).get({ output: 'a', at: [2, 3] }).ops;
  rejects([h[0], { ...h[1], id: 1 }], /duplicate id/, 1);
});

test('an ok get without output and an ok delete without deleted are rejected', () => {
  rejects(new HistoryBuilder().get({ at: [0, 1] }).ops, /get with status ok must have an output/);
  rejects(new HistoryBuilder().del({ at: [0, 1] }).ops, /delete with status ok must say/);
});

test('a put without a value, a non-finite time and an unknown kind are rejected', () => {
  const base = new HistoryBuilder().put({ value: 'a', at: [0, 1] }).ops[0];
  rejects([{ ...base, value: undefined }], /put without a string value/);
  rejects([{ ...base, invokeTime: Number.NaN }], /invokeTime must be a finite number/);
  rejects([{ ...base, kind: 'cas' } as unknown as KvOperation], /unknown kind "cas"/);
});

test('gets and deletes whose outcome is unknown or failed need no output', () => {
  const h = new HistoryBuilder()
    .get({ at: [0, null] })
    .del({ at: [0, null] })
    .get({ at: [0, 3], status: 'fail' })
    .del({ at: [0, 3], status: 'fail' }).ops;
  assert.equal(checkLinearizable(h).verdict, 'linearizable');
});

test('the empty history is linearizable', () => {
  assert.deepEqual(checkLinearizable([]), { verdict: 'linearizable', keysChecked: 0, operationsChecked: 0 });
});
