// Randomized checks. Histories recorded from a real sequential execution must always pass; a
// single corrupted read must always fail; and on tiny arbitrary histories the checker must agree
// with a brute-force oracle in both directions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizable } from '../../lincheck/check.js';
import type { KvOperation, OpStatus } from '../../lincheck/history.js';
import { bruteForceLinearizable, prng, randInt, randomHistory, type RandomHistoryOptions } from './support.js';

const SMALL: Omit<RandomHistoryOptions, 'seed'> = { clients: 4, keys: 2, opsPerClient: 15, unknownRate: 0.1, failRate: 0.05 };
const LARGE: Omit<RandomHistoryOptions, 'seed'> = { clients: 10, keys: 5, opsPerClient: 100, unknownRate: 0.03, failRate: 0.02, maxDuration: 40 };

function okGets(history: readonly KvOperation[]): number[] {
  return history.flatMap((op, i) => (op.kind === 'get' && op.status === 'ok' ? [i] : []));
}

test('histories from a real sequential execution are linearizable', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const h = randomHistory({ seed, ...(seed % 10 === 0 ? LARGE : SMALL) });
    const r = checkLinearizable(h, { timeBudgetMs: 10_000 });
    assert.equal(r.verdict, 'linearizable', `seed ${String(seed)}: ${r.verdict === 'violation' ? r.explanation : JSON.stringify(r)}`);
  }
});

test('a read of a value that was never written is a violation', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const h = randomHistory({ seed, ...(seed % 10 === 0 ? LARGE : SMALL) });
    const gets = okGets(h);
    if (gets.length === 0) continue;
    const victim = gets[randInt(prng(seed), 0, gets.length - 1)];
    const mutated = h.map((op, i) => (i === victim ? { ...op, output: 'never-written' } : op));
    const r = checkLinearizable(mutated, { timeBudgetMs: 10_000 });
    assert.equal(r.verdict, 'violation', `seed ${String(seed)}: mutated op ${String(h[victim].id)}`);
    if (r.verdict === 'violation') {
      assert.equal(r.key, h[victim].key);
      assert.ok(r.operations.length > 0);
    }
  }
});

test('a read of a value written only after the read completed is a violation', () => {
  let mutations = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const h = randomHistory({ seed, ...SMALL });
    // A put (that may have taken effect) invoked strictly after some ok get returned, same key.
    const pairs = okGets(h).flatMap((g) =>
      h.filter((p) => p.kind === 'put' && p.status !== 'fail' && p.key === h[g].key && p.invokeTime > h[g].completeTime!).map((p) => [g, p] as const),
    );
    if (pairs.length === 0) continue;
    const [victim, future] = pairs[randInt(prng(seed), 0, pairs.length - 1)];
    const mutated = h.map((op, i) => (i === victim ? { ...op, output: future.value } : op));
    const r = checkLinearizable(mutated, { timeBudgetMs: 10_000 });
    assert.equal(r.verdict, 'violation', `seed ${String(seed)}: op ${String(h[victim].id)} reads future put ${String(future.id)}`);
    mutations++;
  }
  assert.ok(mutations > 100, `only ${String(mutations)} histories could be mutated`);
});

/** Arbitrary tiny single-key histories: values repeat, outputs are random, many are not linearizable. */
function arbitraryHistory(seed: number): KvOperation[] {
  const rand = prng(seed);
  const n = randInt(rand, 1, 8);
  const values = ['a', 'b'];
  return Array.from({ length: n }, (_, i): KvOperation => {
    const invokeTime = randInt(rand, 0, 20);
    const status: OpStatus = rand() < 0.25 ? 'unknown' : rand() < 0.05 ? 'fail' : 'ok';
    const completeTime = status === 'unknown' ? null : invokeTime + randInt(rand, 0, 10);
    const kind = (['put', 'get', 'delete'] as const)[randInt(rand, 0, 2)];
    const base = { id: i + 1, clientId: i + 1, key: 'k', invokeTime, completeTime, status };
    if (kind === 'put') return { ...base, kind, value: values[randInt(rand, 0, 1)] };
    if (kind === 'get') return { ...base, kind, output: status === 'ok' ? [null, ...values][randInt(rand, 0, 2)] : undefined };
    return { ...base, kind, deleted: status === 'ok' ? rand() < 0.5 : undefined };
  });
}

test('agrees with a brute-force oracle on tiny arbitrary histories', () => {
  let violations = 0;
  let linearizable = 0;
  for (let seed = 1; seed <= 5000; seed++) {
    const h = arbitraryHistory(seed);
    const expected = bruteForceLinearizable(h);
    const r = checkLinearizable(h);
    assert.equal(r.verdict, expected ? 'linearizable' : 'violation', `seed ${String(seed)}: ${JSON.stringify(h)}`);
    if (expected) linearizable++;
    else violations++;
  }
  // Both answers must be well represented, or the comparison proves little.
  assert.ok(violations > 300 && linearizable > 300, `${String(linearizable)} linearizable, ${String(violations)} violations`);
});
