// A pathological history must come back 'unknown' within its budget rather than hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { checkLinearizable } from '../../lincheck/check.js';
import { HistoryBuilder } from './support.js';

/**
 * 30 fully concurrent writes, then two reads that no order of them can satisfy (the first read
 * forces the last write to be v0, the second wants v1 after it). WGL must visit about
 * 30 * 2^29 (linearized set, last value) configurations before concluding: hopeless.
 */
function pathological(): HistoryBuilder {
  const b = new HistoryBuilder();
  for (let i = 0; i < 30; i++) b.put({ client: i + 1, value: `v${String(i)}`, at: [0, 100] });
  b.get({ client: 100, output: 'v0', at: [200, 210] });
  b.get({ client: 100, output: 'v1', at: [220, 230] });
  return b;
}

test('a pathological history answers unknown within the time budget', () => {
  const started = performance.now();
  const r = checkLinearizable(pathological().ops, { timeBudgetMs: 200 });
  const elapsed = performance.now() - started;
  assert.equal(r.verdict, 'unknown', JSON.stringify(r).slice(0, 500));
  if (r.verdict === 'unknown') {
    assert.equal(r.key, 'k');
    assert.match(r.reason, /budget|cache/);
  }
  assert.ok(elapsed < 2_000, `took ${elapsed.toFixed(0)} ms for a 200 ms budget`);
});

test('keys checked before the budget ran out can still report a violation', () => {
  // The cheap, broken key is checked before the expensive one (smallest keys go first).
  const b = pathological();
  b.put({ key: 'small', value: 'x', at: [0, 1] }).get({ key: 'small', output: null, at: [2, 3] });
  const r = checkLinearizable(b.ops, { timeBudgetMs: 200 });
  assert.equal(r.verdict, 'violation');
  if (r.verdict === 'violation') assert.equal(r.key, 'small');
});

test('an exhausted budget is honoured between keys too', () => {
  const b = new HistoryBuilder();
  for (let k = 0; k < 50; k++) b.put({ key: `k${String(k)}`, value: 'x', at: [0, 1] });
  const r = checkLinearizable(b.ops, { timeBudgetMs: -1 });
  assert.equal(r.verdict, 'unknown');
  assert.equal(checkLinearizable(b.ops, { timeBudgetMs: Infinity }).verdict, 'linearizable');
});
