// The memo cache must treat two configurations as equal exactly when they hold the same
// operations and state, whatever toggling led there; and its compression bookkeeping (floor and
// top) must stay exact, or the entries silently grow with the history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigCache, CacheFullError, LinearizedSet } from '../../lincheck/cache.js';
import { prng, randInt } from './support.js';

function expectedFloorTop(set: LinearizedSet, knownCount: number): { floor: number; top: number } {
  const has = (i: number): boolean => (set.words[i >>> 5] & (1 << (i & 31))) !== 0;
  let floor = 0;
  while (floor < set.knownWords && Array.from({ length: 32 }, (_, b) => floor * 32 + b).every((i) => i >= knownCount || has(i))) floor++;
  let top = set.knownWords - 1;
  while (top >= 0 && set.words[top] === 0) top--;
  return { floor, top };
}

test('floor and top track the first non-full and last non-empty known words', () => {
  for (const known of [1, 31, 32, 33, 100, 130]) {
    const rand = prng(known);
    const unknown = [known + 1, known + 2, known + 3];
    const set = new LinearizedSet(known + 4, Array.from({ length: known }, (_, i) => i), unknown);
    const members = new Set<number>();
    for (let step = 0; step < 3000; step++) {
      // Mostly fill from the front, like the search does, with some undoing and stray bits.
      const op = rand() < 0.7 ? Math.min(known - 1, members.size + randInt(rand, -3, 3)) : randInt(rand, 0, known - 1);
      const target = Math.max(0, op);
      set.toggle(target);
      if (members.has(target)) members.delete(target);
      else members.add(target);
      assert.deepEqual({ floor: set.floor, top: set.top }, expectedFloorTop(set, known), `known=${String(known)} step=${String(step)}`);
    }
  }
});

test('addIfAbsent recognises exactly the configurations already recorded', () => {
  const rand = prng(7);
  const n = 80;
  const BAND = [28, 29, 30, 31, 32, 33, 63, 64, 70, 73];
  const known = Array.from({ length: 70 }, (_, i) => i);
  const unknown = Array.from({ length: 10 }, (_, i) => 70 + i);
  const set = new LinearizedSet(n, known, unknown);
  const members = new Set<number>();
  const cache = new ConfigCache(1_000_000);
  const seen = new Set<string>();
  let repeats = 0;
  for (let step = 0; step < 20_000; step++) {
    // First fill the front in order (moving the floor), then wander over a band that straddles
    // word boundaries and the unknown range, so configurations recur often.
    const op = step < 50 ? step : BAND[randInt(rand, 0, BAND.length - 1)];
    set.toggle(op);
    if (members.has(op)) members.delete(op);
    else members.add(op);
    const state = randInt(rand, 0, 1);
    const key = `${[...members].sort((a, b) => a - b).join(',')}|${String(state)}`;
    if (seen.has(key)) repeats++;
    assert.equal(cache.addIfAbsent(set, state), !seen.has(key), `step ${String(step)}`);
    seen.add(key);
  }
  assert.equal(cache.size, seen.size);
  assert.ok(repeats > 1000, `only ${String(repeats)} repeated configurations`);
});

test('a full cache throws CacheFullError', () => {
  const set = new LinearizedSet(4, [0, 1, 2, 3], []);
  const cache = new ConfigCache(3);
  assert.equal(cache.addIfAbsent(set, 0), true);
  assert.equal(cache.addIfAbsent(set, 1), true);
  assert.equal(cache.addIfAbsent(set, 2), true);
  assert.equal(cache.addIfAbsent(set, 2), false);
  assert.throws(() => cache.addIfAbsent(set, 3), CacheFullError);
});
