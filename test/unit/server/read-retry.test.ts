// Reads whose ReadIndex question or answer was lost are asked again (read-retry.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readsToAskAgain, type RetriableRead } from '../../../src/server/read-retry.js';

test('a read without an index is asked again once the retry interval has passed, and its clock restarts', () => {
  const reads = new Map<number, RetriableRead>([
    [1, { index: -1, askedAtMs: 0 }],
    [2, { index: 17, askedAtMs: 0 }],
    [3, { index: -1, askedAtMs: 300 }],
  ]);
  assert.deepEqual(readsToAskAgain(reads, 499, 500), [], 'not before the interval');
  assert.deepEqual(readsToAskAgain(reads, 500, 500), [1], 'the first read is due; the answered one never is');
  assert.deepEqual(readsToAskAgain(reads, 799, 500), [], 'the first was just asked again; the third is not due yet');
  assert.deepEqual(readsToAskAgain(reads, 800, 500), [3]);
  assert.deepEqual(readsToAskAgain(reads, 1000, 500), [1]);
  assert.equal(reads.get(2)?.askedAtMs, 0, 'an answered read is left alone');
});
