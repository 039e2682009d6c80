// Exactly-once writes: a retried stamp is answered with its first result and changes nothing;
// results are forgotten once acknowledged, bounded per client, and idle clients expire by log index
// or by leader time, deterministically.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SESSION_IDLE_ENTRIES_MAX, SESSION_IDLE_MS_MAX, SESSION_RESULTS_MAX } from '../../../src/kvstore/sessions.js';
import type { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { applyOne, freshMachine, LogBuilder } from './helpers.js';

const T0 = 1_700_000_000_000;

function snapshotOf(sm: KvStateMachine): unknown {
  return { hash: sm.hash().hash, revision: sm.revision, stats: sm.stats() };
}

test('the same stamp twice: the first result again, and nothing changes', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const stamp = { clientId: 'c1', seq: 1, ackedSeq: 0 };
    const first = applyOne(sm, log.put('k', 'v1', T0, stamp));
    assert.deepEqual(first, { kind: 'put', key: 'k', value: 'v1', createRevision: 2, modRevision: 2, version: 1, revision: 2 });
    const before = snapshotOf(sm);
    // The retry travels as a new entry (another leader proposed it again), even with another value.
    assert.deepEqual(applyOne(sm, log.put('k', 'v1', T0 + 5, stamp)), first);
    assert.deepEqual(applyOne(sm, log.put('k', 'different', T0 + 6, stamp)), first, 'the first result, whatever the retry carries');
    assert.deepEqual(snapshotOf(sm), before);
    assert.equal(sm.get('k').kv?.version, 1);
    // Retries within one batch, next to other writes, behave the same.
    const batch = [log.put('k', 'v1', T0, stamp), log.put('other', 'x', T0), log.put('k', 'v1', T0, stamp)];
    const results = sm.apply(batch);
    assert.deepEqual(results.get(batch[0].index), first);
    assert.deepEqual(results.get(batch[2].index), first);
    assert.equal(sm.revision, 3);
  } finally {
    await done();
  }
});

test('deletes are exactly-once too: a retried delete answers deleted=true again', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    applyOne(sm, log.put('k', 'v'));
    const stamp = { clientId: 'c1', seq: 1, ackedSeq: 0 };
    const first = applyOne(sm, log.del('k', T0, stamp));
    assert.deepEqual(first, { kind: 'delete', key: 'k', deleted: true, revision: 3 });
    applyOne(sm, log.put('k', 'back'));
    assert.deepEqual(applyOne(sm, log.del('k', T0, stamp)), first, 'not applied again: the re-created key stays');
    assert.equal(sm.get('k').kv?.value, 'back');
  } finally {
    await done();
  }
});

test('clients are independent, and many writes of one client may be in flight', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const a1 = applyOne(sm, log.put('x', 'a1', T0, { clientId: 'a', seq: 1, ackedSeq: 0 }));
    const b1 = applyOne(sm, log.put('x', 'b1', T0, { clientId: 'b', seq: 1, ackedSeq: 0 }));
    assert.notDeepEqual(a1, b1);
    // Out of order: seq 3 arrives before seq 2; both apply once.
    const a3 = applyOne(sm, log.put('y', 'a3', T0, { clientId: 'a', seq: 3, ackedSeq: 0 }));
    const a2 = applyOne(sm, log.put('y', 'a2', T0, { clientId: 'a', seq: 2, ackedSeq: 0 }));
    assert.equal(a3?.kind, 'put');
    assert.equal(a2?.kind, 'put');
    assert.deepEqual(applyOne(sm, log.put('y', 'a3', T0, { clientId: 'a', seq: 3, ackedSeq: 1 })), a3);
    assert.deepEqual(applyOne(sm, log.put('x', 'b1', T0, { clientId: 'b', seq: 1, ackedSeq: 0 })), b1);
    assert.equal(sm.stats().sessions, 2);
  } finally {
    await done();
  }
});

test('results at or below ackedSeq are forgotten; a retry of one is refused, never applied twice', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    for (let seq = 1; seq <= 5; seq++) applyOne(sm, log.put(`k${seq}`, 'v', T0, { clientId: 'c', seq, ackedSeq: 0 }));
    assert.equal(sm.stats().sessionResults, 5);
    // Seq 6 acknowledges 1..3.
    applyOne(sm, log.put('k6', 'v', T0, { clientId: 'c', seq: 6, ackedSeq: 3 }));
    assert.equal(sm.stats().sessionResults, 3, 'results 4, 5 and 6 remain');
    const before = snapshotOf(sm);
    const stale = applyOne(sm, log.put('k2', 'again', T0, { clientId: 'c', seq: 2, ackedSeq: 1 }));
    assert.equal(stale?.kind, 'error');
    assert.equal((stale as { code: string }).code, 'STALE_SEQUENCE');
    assert.deepEqual(snapshotOf(sm), before);
    // Seq 4 is not acknowledged yet: still answered from memory.
    assert.equal(applyOne(sm, log.put('k4', 'v', T0, { clientId: 'c', seq: 4, ackedSeq: 3 }))?.kind, 'put');
    assert.deepEqual(snapshotOf(sm), before);
  } finally {
    await done();
  }
});

test('at most 1,024 results per client: the oldest are dropped and their retries refused', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const total = SESSION_RESULTS_MAX + 10;
    const entries: Entry[] = [];
    for (let seq = 1; seq <= total; seq++) entries.push(log.put(`k${seq % 7}`, `v${seq}`, T0, { clientId: 'busy', seq, ackedSeq: 0 }));
    sm.apply(entries);
    assert.equal(sm.stats().sessionResults, SESSION_RESULTS_MAX);
    const revision = sm.revision;
    for (const seq of [1, 10]) {
      const retry = applyOne(sm, log.put('k1', 'x', T0, { clientId: 'busy', seq, ackedSeq: 0 }));
      assert.equal((retry as { code: string }).code, 'STALE_SEQUENCE', `seq ${seq} was evicted`);
    }
    const kept = applyOne(sm, log.put('k1', 'x', T0, { clientId: 'busy', seq: 11, ackedSeq: 0 }));
    assert.equal(kept?.kind, 'put');
    assert.equal((kept as { value: string }).value, 'v11', 'the oldest kept result is answered from memory');
    assert.equal(sm.revision, revision);
  } finally {
    await done();
  }
});

test('a client idle for more than 1,000,000 entries is forgotten: its old stamp applies anew', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const stamp = { clientId: 'sleepy', seq: 1, ackedSeq: 0 };
    const first = applyOne(sm, log.put('k', 'v', T0, stamp));
    applyOne(sm, log.put('busy', 'x', T0, { clientId: 'busy', seq: 1, ackedSeq: 0 }));
    // Exactly SESSION_IDLE_ENTRIES_MAX entries later the client is still remembered...
    const filler = (count: number): void => {
      for (let done = 0; done < count;) {
        const batch: Entry[] = [];
        for (let i = 0; i < 50_000 && done < count; i++, done++) batch.push(log.noop());
        sm.apply(batch);
      }
    };
    filler(SESSION_IDLE_ENTRIES_MAX - 2);
    assert.equal(log.lastIndex + 1 - 1, SESSION_IDLE_ENTRIES_MAX, 'the next entry is 1,000,000 after the first');
    assert.deepEqual(applyOne(sm, log.put('k', 'v', T0, stamp)), first, 'idle for exactly 1,000,000 entries: still remembered');
    // ...one more and it is expired: the retry is a new write.
    filler(SESSION_IDLE_ENTRIES_MAX);
    const anew = applyOne(sm, log.put('k', 'v', T0, stamp));
    assert.equal(anew?.kind, 'put');
    assert.equal((anew as { version: number }).version, 2);
    // The other idle client was swept away physically (bounded sweep at the end of each apply).
    sm.apply([log.noop()]);
    assert.equal(sm.stats().sessions, 1, 'only the client that came back');
  } finally {
    await done();
  }
});

test('a client whose last stamp is more than an hour older than the newest applied is forgotten', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const stamp = { clientId: 'sleepy', seq: 1, ackedSeq: 0 };
    const first = applyOne(sm, log.put('k', 'v', T0, stamp));
    // Another client's write moves the leader clock to exactly one hour later: still remembered.
    applyOne(sm, log.put('other', 'x', T0 + SESSION_IDLE_MS_MAX, { clientId: 'other', seq: 1, ackedSeq: 0 }));
    assert.deepEqual(applyOne(sm, log.put('k', 'v', T0, stamp)), first);
    // One millisecond more, by any entry (here an unstamped one): expired.
    applyOne(sm, log.put('other', 'y', T0 + SESSION_IDLE_MS_MAX + 1));
    assert.equal(sm.stats().sessions, 1, 'swept at the end of that apply');
    const anew = applyOne(sm, log.put('k', 'v', T0, stamp));
    assert.equal((anew as { version: number }).version, 2, 'applied again');
  } finally {
    await done();
  }
});

test('expiry follows the leader stamps in the log, so a retry stamped with an older clock cannot revive a session', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const stamp = { clientId: 'c', seq: 1, ackedSeq: 0 };
    applyOne(sm, log.put('k', 'v', T0, stamp));
    applyOne(sm, log.put('z', 'z', T0 + SESSION_IDLE_MS_MAX + 1));
    // A lagging leader's clock: the newest stamp applied still decides.
    const anew = applyOne(sm, log.put('k', 'v', T0, stamp));
    assert.equal((anew as { version: number }).version, 2);
  } finally {
    await done();
  }
});

test('sessions survive a restart', async () => {
  const { sm, path, done } = await freshMachine();
  const log = new LogBuilder();
  const { KvStateMachine } = await import('../../../src/kvstore/state-machine.js');
  let reopened: KvStateMachine | null = null;
  try {
    const stamp = { clientId: 'c', seq: 7, ackedSeq: 3 };
    const first = applyOne(sm, log.put('k', 'v', T0, stamp));
    await sm.close();
    reopened = await KvStateMachine.open(path);
    assert.deepEqual(applyOne(reopened, log.put('k', 'v', T0, stamp)), first);
    assert.equal(reopened.revision, 2);
  } finally {
    await reopened?.close();
    await done();
  }
});
